/**
 * acme-client, loaded on first use. With axios behind it, loading it adds about 26 MiB
 * of RSS (Node 20: 66 → 85 MiB at start), which a proxy without tls.acme must not pay.
 */
type ACMEClientModule = typeof import('acme-client');

let loading: Promise<ACMEClientModule> | undefined;

export function acmeClientModule(): Promise<ACMEClientModule> {
  loading ??= import('acme-client');
  return loading;
}
