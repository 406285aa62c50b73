/**
 * An upload stays on the replica that started it. The registry sends each step's URL
 * in `Location` (202 on upload start and every PATCH); with several replicas, the
 * proxy adds the replica's number to that URL's query, and clients send it back on the
 * next PATCH and the final PUT, which go to the same replica with the number taken out
 * again. Kept in the URL rather than in a table, so it holds across cluster workers
 * and reloads: a replica whose http.secret differs (a misconfiguration) then cannot
 * turn a push into "blob upload unknown".
 */

/** The query parameter; the registry never sees it. */
export const PIN_PARAM = '_rtp_replica';

/** Adds the replica's number to an upload URL (absolute or relative); other URLs pass as they are. */
export function pinUpload(location: string, replicaIndex: number): string {
  const hash = location.indexOf('#');
  const base = hash >= 0 ? location.slice(0, hash) : location;
  const path = base.split('?', 1)[0] ?? '';
  if (!/\/v2\/.+\/blobs\/uploads\/[^/]+$/.test(path)) return location;
  const joined = `${base}${base.includes('?') ? '&' : '?'}${PIN_PARAM}=${replicaIndex}`;
  return hash >= 0 ? joined + location.slice(hash) : joined;
}

/**
 * The replica an upload request names, and its URL as the registry must see it (every
 * `_rtp_replica` taken out); `index` is undefined when the URL names none or a bad one.
 */
export function takePin(url: string): { index: number | undefined; url: string } {
  const q = url.indexOf('?');
  if (q < 0 || !url.includes(PIN_PARAM, q)) return { index: undefined, url };
  let index: number | undefined;
  const kept = url
    .slice(q + 1)
    .split('&')
    .filter((pair) => {
      const [name, value = ''] = pair.split('=', 2);
      if (name !== PIN_PARAM) return true;
      if (/^\d{1,4}$/.test(value)) index = Number(value);
      return false;
    });
  const path = url.slice(0, q);
  return { index, url: kept.length > 0 ? `${path}?${kept.join('&')}` : path };
}
