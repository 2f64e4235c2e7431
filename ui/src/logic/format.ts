// Formatting of timestamps (milliseconds since the Unix epoch) in local time.

function pad(value: number): string {
  return String(value).padStart(2, "0");
}

/**
 * Formats a timestamp briefly: "10:31" on the day of `now`, "03-14 10:31"
 * earlier in the same year, "2024-03-14 10:31" otherwise.
 */
export function formatShortTime(ms: number, now: number = Date.now()): string {
  const date = new Date(ms);
  const today = new Date(now);
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  const sameYear = date.getFullYear() === today.getFullYear();
  const sameDay = sameYear && date.getMonth() === today.getMonth() && date.getDate() === today.getDate();
  if (sameDay) return clock;
  const monthDay = `${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  if (sameYear) return `${monthDay} ${clock}`;
  return `${date.getFullYear()}-${monthDay} ${clock}`;
}

/** Formats a timestamp in full: "2024-03-14 10:31:05". */
export function formatFullTime(ms: number): string {
  const date = new Date(ms);
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
