import { useEventLog } from '../live/LiveProvider';
import { describeEvent } from '../lib/events';
import { formatClock } from '../lib/format';
import type { LiveEvent } from '../api/types';

export function EventList({ events, empty, label = 'Events' }: { events: LiveEvent[]; empty: string; label?: string }) {
  if (!events.length) return <p className="empty">{empty}</p>;
  // Focusable so that the scrolling list can be read with the keyboard.
  return (
    <ol className="events" tabIndex={0} aria-label={label}>
      {events.map((e) => (
        <li key={`${e.stream}-${e.seq}`} className={`ev ev-${e.type}`}>
          <time dateTime={e.time}>{e.time ? formatClock(e.time) : ''}</time>
          <span className="ev-tenant">{e.tenant}</span>
          <span className="ev-text">{describeEvent(e)}</span>
        </li>
      ))}
    </ol>
  );
}

export function ActivityFeed({ limit = 20 }: { limit?: number }) {
  const events = useEventLog();
  return <EventList events={events.slice(0, limit)} empty="No changes since this page opened. They appear here as they happen." />;
}
