// Parsing and formatting of the values the API returns: Kubernetes
// quantities, exact decimal strings, times. Pure functions, unit-tested.

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** A Kubernetes quantity ("500m", "1.5Gi", "1e3") as a number of base
 * units (cores, bytes), or null when it does not parse. */
export function parseQuantity(q: string | null | undefined): number | null {
  if (q == null) return null;
  const m = /^\s*([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)\s*$/.exec(q);
  if (!m) return null;
  const num = Number(m[1]);
  if (m[2]) return num * 10 ** Number(m[2].slice(1));
  const suffix = m[3] ?? '';
  const mult = BINARY[suffix] ?? DECIMAL[suffix];
  return mult === undefined ? null : num * mult;
}

/** CPU in millicores from a quantity; null when it does not parse. */
export function cpuMilli(q: string | null | undefined): number | null {
  const v = parseQuantity(q);
  return v == null ? null : Math.round(v * 1000);
}

/** "250m", "1.5 cores", "4 cores". */
export function formatCpu(milli: number | null | undefined): string {
  if (milli == null || !Number.isFinite(milli)) return '–';
  if (Math.abs(milli) < 1000) return `${Math.round(milli)}m`;
  const cores = milli / 1000;
  return `${trim(cores, cores < 10 ? 2 : 1)} ${cores === 1 ? 'core' : 'cores'}`;
}

/** Bytes with binary units: "512 MiB", "1.5 GiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes == null || !Number.isFinite(bytes)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = Math.abs(bytes);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const sign = bytes < 0 ? '-' : '';
  return `${sign}${trim(v, v < 10 && i > 0 ? 2 : 1)} ${units[i]}`;
}

/** A fraction (0.42) as "42%"; null → "–". */
export function formatPercent(f: number | null | undefined, digits = 0): string {
  if (f == null || !Number.isFinite(f)) return '–';
  return `${(f * 100).toFixed(digits)}%`;
}

/** n with at most `digits` decimals, trailing zeros removed. */
export function trim(n: number, digits: number): string {
  return Number(n.toFixed(digits)).toString();
}

/** An exact decimal string ("39000.294000") as a number (for charts). */
export function decimal(s: string | null | undefined): number {
  if (s == null) return 0;
  const v = Number(s);
  return Number.isFinite(v) ? v : 0;
}

/** Money from the API's exact string ("12.34") and ISO currency. */
export function formatMoney(amount: string | number, currency: string): string {
  const v = typeof amount === 'number' ? amount : Number(amount);
  if (!Number.isFinite(v)) return `${amount} ${currency}`;
  try {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency, maximumFractionDigits: 6 }).format(v);
  } catch {
    return `${amount} ${currency}`;
  }
}

/** CPU milli-seconds → core-hours; MiB-seconds → GiB-hours. */
export const cpuMilliSecondsToCoreHours = (ms: number) => ms / 1000 / 3600;
export const mibSecondsToGibHours = (mibs: number) => mibs / 1024 / 3600;
export const byteSecondsToGibHours = (bs: number) => bs / 2 ** 30 / 3600;

/** "3s ago", "5 min ago", "2 h ago", or the date for older. */
export function formatAgo(iso: string | number | null | undefined, now = Date.now()): string {
  if (iso == null || iso === '') return '–';
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  if (!Number.isFinite(t)) return '–';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(t).toISOString().slice(0, 10);
}

/** "14:03:07" in UTC, for event logs and chart axes. */
export function formatClock(t: number | string): string {
  const d = new Date(typeof t === 'number' ? t : Date.parse(t));
  return d.toISOString().slice(11, 19);
}

/** A calendar month [start, end) in UTC, `back` months before the one holding now. */
export function monthPeriod(back: number, now = new Date()): { from: string; to: string; label: string } {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth() - back;
  const start = new Date(Date.UTC(y, m, 1));
  const end = new Date(Date.UTC(y, m + 1, 1));
  const label = start.toLocaleString('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });
  return { from: start.toISOString().slice(0, 10), to: end.toISOString().slice(0, 10), label };
}

/** One CSV field, quoted when it holds a comma, quote or newline; a
 * leading =, +, - or @ is prefixed with ' so spreadsheets never run it. */
export function csvField(v: string | number | boolean | null | undefined): string {
  let s = v == null ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s) && !/^-?\d/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvRows(rows: (string | number | boolean | null | undefined)[][]): string {
  return rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/** DNS-1123 label check as the API applies it to tenant names. */
export function tenantNameProblem(name: string): string | null {
  if (!name) return 'Enter a name.';
  if (name.length > 56) return 'At most 56 characters.';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name))
    return 'Lower-case letters, digits and "-", starting and ending with a letter or digit.';
  if (['system', 'admin', 'default', 'nimbus'].includes(name) || name.startsWith('kube-')) return `"${name}" is reserved.`;
  return null;
}

/** A positive quantity check for the forms (the API has the last word). */
export function quantityProblem(q: string, what: 'cpu' | 'memory'): string | null {
  const v = parseQuantity(q);
  if (v == null) return what === 'cpu' ? 'A quantity such as 200m or 1.' : 'A quantity such as 256Mi or 1Gi.';
  if (v <= 0) return 'Must be positive.';
  return null;
}

/** An axis tick: two significant digits, no exponent ("0.00015", "12", "1500"). */
export function axisNumber(v: number): string {
  if (!Number.isFinite(v) || v === 0) return '0';
  if (Math.abs(v) >= 100) return Math.round(v).toString();
  const s = Number(v.toPrecision(2));
  if (Math.abs(s) < 1e-6) return s.toExponential(1);
  const fixed = s.toFixed(Math.max(0, -Math.floor(Math.log10(Math.abs(s))) + 1));
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}
