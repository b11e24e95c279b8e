// Says when the live event stream is down and when it is back.
import { useEffect, useState } from 'react';
import type { StreamState } from '../live/stream';

export function LiveBanner({ state }: { state: StreamState }) {
  const [showBack, setShowBack] = useState(false);
  const [wasDown, setWasDown] = useState(false);

  useEffect(() => {
    if (state.status === 'reconnecting') setWasDown(true);
    if (state.status === 'live' && wasDown) {
      setWasDown(false);
      setShowBack(true);
    }
  }, [state.status, wasDown]);

  useEffect(() => {
    if (!showBack) return;
    const t = setTimeout(() => setShowBack(false), 5000);
    return () => clearTimeout(t);
  }, [showBack]);

  let body: React.ReactNode = null;
  let tone = '';
  if (state.status === 'reconnecting') {
    tone = 'warn';
    body = (
      <>
        <strong>Live updates interrupted.</strong> Reconnecting to the event stream
        {state.attempts > 1 ? ` (attempt ${state.attempts})` : ''}… The figures shown may be out of date.
      </>
    );
  } else if (showBack) {
    tone = 'ok';
    body = (
      <>
        <strong>Live updates reconnected.</strong> Missed changes have been loaded.
      </>
    );
  }
  // The live region stays in the DOM so screen readers announce changes.
  return (
    <div className={`live-banner ${tone}`} role="status" aria-live="polite" data-testid="live-banner" hidden={!body}>
      {body}
    </div>
  );
}

export function LiveDot({ state }: { state: StreamState }) {
  const label =
    state.status === 'live' ? 'Live' : state.status === 'reconnecting' ? 'Reconnecting' : state.status === 'closed' ? 'Offline' : 'Connecting';
  return (
    <span className={`live-dot ${state.status}`} data-testid="live-status">
      <span className="dot" aria-hidden="true" />
      {label}
    </span>
  );
}
