import { describe, expect, it } from 'vitest';
import {
  axisNumber,
  cpuMilli,
  csvField,
  csvRows,
  formatAgo,
  formatBytes,
  formatCpu,
  formatMoney,
  formatPercent,
  monthPeriod,
  parseQuantity,
  quantityProblem,
  tenantNameProblem,
} from '../src/lib/format';

describe('quantities', () => {
  it('parses Kubernetes quantities', () => {
    expect(parseQuantity('500m')).toBeCloseTo(0.5);
    expect(parseQuantity('2')).toBe(2);
    expect(parseQuantity('1.5Gi')).toBe(1.5 * 2 ** 30);
    expect(parseQuantity('256Mi')).toBe(256 * 2 ** 20);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity('1k')).toBe(1000);
    expect(parseQuantity('100M')).toBe(1e8);
    expect(parseQuantity('lots')).toBeNull();
    expect(parseQuantity('')).toBeNull();
    expect(parseQuantity('5 Mi')).toBeNull();
    expect(parseQuantity(undefined)).toBeNull();
  });
  it('gives CPU in millicores', () => {
    expect(cpuMilli('200m')).toBe(200);
    expect(cpuMilli('1.5')).toBe(1500);
    expect(cpuMilli('x')).toBeNull();
  });
  it('checks form quantities', () => {
    expect(quantityProblem('200m', 'cpu')).toBeNull();
    expect(quantityProblem('0', 'cpu')).toBe('Must be positive.');
    expect(quantityProblem('-1Gi', 'memory')).toBe('Must be positive.');
    expect(quantityProblem('lots', 'memory')).toMatch(/256Mi/);
  });
});

describe('formatting', () => {
  it('formats CPU', () => {
    expect(formatCpu(250)).toBe('250m');
    expect(formatCpu(1000)).toBe('1 core');
    expect(formatCpu(1500)).toBe('1.5 cores');
    expect(formatCpu(16000)).toBe('16 cores');
    expect(formatCpu(null)).toBe('–');
  });
  it('formats bytes with binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512 * 2 ** 20)).toBe('512 MiB');
    expect(formatBytes(1.5 * 2 ** 30)).toBe('1.5 GiB');
    expect(formatBytes(16 * 2 ** 30)).toBe('16 GiB');
    expect(formatBytes(undefined)).toBe('–');
  });
  it('formats percentages and money', () => {
    expect(formatPercent(0.423)).toBe('42%');
    expect(formatPercent(0.0025, 1)).toBe('0.3%');
    expect(formatPercent(null)).toBe('–');
    expect(formatMoney('12.34', 'USD')).toBe('$12.34');
    expect(formatMoney('0.05', 'USD')).toBe('$0.05');
    expect(formatMoney('1', 'EUR')).toBe('€1.00');
    expect(formatMoney('5', 'XXX-bad')).toBe('5 XXX-bad');
  });
  it('says how long ago', () => {
    const now = Date.parse('2026-11-25T12:00:00Z');
    expect(formatAgo('2026-11-25T11:59:50Z', now)).toBe('10s ago');
    expect(formatAgo('2026-11-25T11:30:00Z', now)).toBe('30 min ago');
    expect(formatAgo('2026-11-25T09:00:00Z', now)).toBe('3 h ago');
    expect(formatAgo('2026-11-01T09:00:00Z', now)).toBe('2026-11-01');
    expect(formatAgo(null, now)).toBe('–');
    expect(formatAgo('garbage', now)).toBe('–');
  });
  it('labels chart axes without exponents or repeats', () => {
    expect(axisNumber(0)).toBe('0');
    expect(axisNumber(0.00015)).toBe('0.00015');
    expect(axisNumber(0.0001)).toBe('0.0001');
    expect(axisNumber(0.00005)).toBe('0.00005');
    expect(axisNumber(10)).toBe('10');
    expect(axisNumber(12.5)).toBe('13');
    expect(axisNumber(1500)).toBe('1500');
    expect(axisNumber(0.25)).toBe('0.25');
  });
});

describe('periods', () => {
  it('gives calendar months in UTC', () => {
    const now = new Date('2026-01-15T10:00:00Z');
    expect(monthPeriod(0, now)).toEqual({ from: '2026-01-01', to: '2026-02-01', label: 'January 2026' });
    expect(monthPeriod(1, now)).toEqual({ from: '2025-12-01', to: '2026-01-01', label: 'December 2025' });
  });
});

describe('CSV', () => {
  it('quotes what needs quoting', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField(null)).toBe('');
    expect(csvField(12)).toBe('12');
  });
  it('keeps spreadsheets from running formulas', () => {
    expect(csvField('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvField('@cmd')).toBe("'@cmd");
    expect(csvField('-12.5')).toBe('-12.5');
  });
  it('joins rows with CRLF', () => {
    expect(csvRows([['a', 'b'], [1, 2]])).toBe('a,b\r\n1,2\r\n');
  });
});

describe('tenant names', () => {
  it('follows the API rules', () => {
    expect(tenantNameProblem('team-a')).toBeNull();
    expect(tenantNameProblem('')).toMatch(/Enter/);
    expect(tenantNameProblem('Team')).toMatch(/Lower-case/);
    expect(tenantNameProblem('-a')).toMatch(/Lower-case/);
    expect(tenantNameProblem('a'.repeat(57))).toMatch(/56/);
    expect(tenantNameProblem('admin')).toMatch(/reserved/);
    expect(tenantNameProblem('kube-x')).toMatch(/reserved/);
  });
});
