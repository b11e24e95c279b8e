// Small building blocks shared by the pages.
import { useEffect, useId, useRef } from 'react';
import type { ReactNode } from 'react';
import type { Condition } from '../api/types';
import { formatPercent } from '../lib/format';

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="page-header">
      <h1>{title}</h1>
      {children && <div className="page-header-actions">{children}</div>}
    </div>
  );
}

export function Card({ title, children, className, actions }: { title?: string; children: ReactNode; className?: string; actions?: ReactNode }) {
  const id = useId();
  return (
    <section className={`card ${className ?? ''}`} aria-labelledby={title ? id : undefined}>
      {(title || actions) && (
        <div className="card-head">
          {title && <h2 id={id}>{title}</h2>}
          {actions}
        </div>
      )}
      {children}
    </section>
  );
}

export function Stat({ label, value, sub }: { label: string; value: ReactNode; sub?: ReactNode }) {
  return (
    <div className="stat">
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
      {sub && <div className="stat-sub">{sub}</div>}
    </div>
  );
}

/** A labelled bar: value of max, with the figures in words beside it. */
export function Meter({ label, value, max, text }: { label: string; value: number; max: number | null; text: string }) {
  const f = max ? value / max : null;
  const pct = f == null ? 0 : Math.min(1, Math.max(0, f));
  const level = f == null ? '' : f > 1 ? 'over' : f >= 0.85 ? 'high' : '';
  return (
    <div className="meter">
      <div className="meter-top">
        <span className="meter-label">{label}</span>
        <span className="meter-text">
          {text}
          {f != null && <span className="meter-pct"> · {formatPercent(f)}</span>}
        </span>
      </div>
      <div
        className={`meter-track ${level}`}
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={max ?? 0}
        aria-valuenow={value}
        aria-valuetext={text}
      >
        <div className="meter-fill" style={{ width: `${pct * 100}%` }} />
      </div>
    </div>
  );
}

export function ErrorNote({ error, what }: { error: unknown; what?: string }) {
  if (!error) return null;
  const msg = error instanceof Error ? error.message : String(error);
  return (
    <p className="error-note" role="alert">
      {what ? `${what}: ` : ''}
      {msg}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

const PHASE_CLASS: Record<string, string> = {
  Running: 'ok',
  Ready: 'ok',
  Active: 'ok',
  active: 'ok',
  Pending: 'warn',
  Progressing: 'warn',
  Terminating: 'warn',
  deleting: 'warn',
  Absent: 'warn',
  Degraded: 'bad',
  Failed: 'bad',
};

export function Badge({ children, tone }: { children: ReactNode; tone?: 'ok' | 'warn' | 'bad' | 'neutral' }) {
  const t = tone ?? PHASE_CLASS[String(children)] ?? 'neutral';
  return <span className={`badge ${t}`}>{children}</span>;
}

/** The conditions that matter at a glance: True Ready, True Progressing, True Degraded. */
export function ConditionBadges({ conditions }: { conditions: Condition[] }) {
  if (!conditions.length) return <span className="muted">none yet</span>;
  return (
    <span className="conds">
      {conditions.map((c) => {
        const good = c.type === 'Degraded' ? c.status === 'False' : c.status === 'True';
        const tone = c.type === 'Progressing' ? (c.status === 'True' ? 'warn' : 'neutral') : good ? 'ok' : c.type === 'Degraded' ? 'bad' : 'warn';
        return (
          <span key={c.type} className={`badge ${tone}`} title={`${c.reason}${c.message ? `: ${c.message}` : ''}`}>
            {c.type}={c.status}
          </span>
        );
      })}
    </span>
  );
}

/**
 * A modal dialog: focus moves into it, Tab stays inside, Escape cancels,
 * and focus returns where it was on close.
 */
export function Dialog({
  title,
  children,
  onClose,
  actions,
}: {
  title: string;
  children: ReactNode;
  onClose: () => void;
  actions: ReactNode;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const id = useId();
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const el = ref.current!;
    const focusables = () =>
      Array.from(el.querySelectorAll<HTMLElement>('button, input, select, textarea, a[href], [tabindex]:not([tabindex="-1"])')).filter(
        (x) => !x.hasAttribute('disabled'),
      );
    (el.querySelector<HTMLElement>('[data-autofocus]') ?? focusables()[0] ?? el).focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        onClose();
      } else if (e.key === 'Tab') {
        const f = focusables();
        if (!f.length) return;
        const first = f[0];
        const last = f[f.length - 1];
        if (e.shiftKey && document.activeElement === first) {
          e.preventDefault();
          last.focus();
        } else if (!e.shiftKey && document.activeElement === last) {
          e.preventDefault();
          first.focus();
        }
      }
    };
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('keydown', onKey);
      before?.focus?.();
    };
  }, [onClose]);
  return (
    <div className="dialog-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="dialog" role="dialog" aria-modal="true" aria-labelledby={id} ref={ref} tabIndex={-1}>
        <h2 id={id}>{title}</h2>
        <div className="dialog-body">{children}</div>
        <div className="dialog-actions">{actions}</div>
      </div>
    </div>
  );
}

export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  onConfirm,
  onCancel,
  busy,
  error,
}: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
  busy?: boolean;
  error?: unknown;
}) {
  return (
    <Dialog
      title={title}
      onClose={onCancel}
      actions={
        <>
          <button type="button" className="btn" onClick={onCancel} data-autofocus>
            Cancel
          </button>
          <button type="button" className="btn danger" onClick={onConfirm} disabled={busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </>
      }
    >
      {children}
      <ErrorNote error={error} />
    </Dialog>
  );
}

/** A labelled form field; the error is tied to the input for screen readers. */
export function Field({
  label,
  hint,
  error,
  children,
  id,
}: {
  label: string;
  hint?: string;
  error?: string | null;
  id: string;
  children: ReactNode;
}) {
  return (
    <div className={`field ${error ? 'has-error' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children}
      {hint && !error && (
        <span className="hint" id={`${id}-hint`}>
          {hint}
        </span>
      )}
      {error && (
        <span className="field-error" id={`${id}-error`} role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

/** Props tying an input to its Field's hint or error. */
export function described(id: string, error?: string | null, hint?: string) {
  return {
    id,
    'aria-invalid': error ? true : undefined,
    'aria-describedby': error ? `${id}-error` : hint ? `${id}-hint` : undefined,
  } as const;
}
