/**
 * Registry operations, from a request's method and path (the routes of the
 * distribution spec, https://github.com/opencontainers/distribution-spec), so
 * that metrics say "manifest_get" and "upload_chunk" rather than "GET" and "PATCH".
 */

export const OPERATIONS = [
  'ping',
  'catalog',
  'tags_list',
  'manifest_get',
  'manifest_head',
  'manifest_put',
  'manifest_delete',
  'blob_get',
  'blob_head',
  'blob_delete',
  'upload_start',
  'upload_status',
  'upload_chunk',
  'upload_complete',
  'upload_cancel',
  'referrers',
  'token',
  'other',
] as const;
export type Operation = (typeof OPERATIONS)[number];

/**
 * A repository name is one or more path components; the last route keyword wins,
 * as in distribution's router (a repository may itself be called "blobs").
 */
const ROUTE = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/(.*)$/;
/** Token endpoints as registries deploy them: distribution's examples, Harbor, GitLab. */
const TOKEN = /^\/(?:token|auth\/token|service\/token|v2\/token|jwt\/auth|oauth2?\/token)\/?$/;

export function classifyOperation(method: string | undefined, path: string): Operation {
  const m = (method ?? '').toUpperCase();
  if (path === '/v2' || path === '/v2/') return 'ping';
  if (path === '/v2/_catalog') return 'catalog';
  if (TOKEN.test(path)) return 'token';
  const route = ROUTE.exec(path);
  if (!route) return 'other';
  const [, , kind, rest = ''] = route;
  switch (kind) {
    case 'manifests':
      return byMethod(m, {
        GET: 'manifest_get',
        HEAD: 'manifest_head',
        PUT: 'manifest_put',
        DELETE: 'manifest_delete',
      });
    case 'tags':
      return rest === 'list' && m === 'GET' ? 'tags_list' : 'other';
    case 'referrers':
      return m === 'GET' ? 'referrers' : 'other';
    default: // blobs
      if (rest === 'uploads' || rest === 'uploads/') {
        return m === 'POST' ? 'upload_start' : 'other';
      }
      if (rest.startsWith('uploads/')) {
        return byMethod(m, {
          GET: 'upload_status',
          PATCH: 'upload_chunk',
          PUT: 'upload_complete',
          DELETE: 'upload_cancel',
        });
      }
      return byMethod(m, { GET: 'blob_get', HEAD: 'blob_head', DELETE: 'blob_delete' });
  }
}

function byMethod(method: string, table: Record<string, Operation>): Operation {
  return table[method] ?? 'other';
}
