/**
 * dns-01 by RFC 2136 dynamic update, signed with TSIG (RFC 8945): BIND, Knot, PowerDNS
 * and Windows DNS accept these. present adds one TXT record, cleanup deletes exactly that
 * value (other TXT records at the name, such as a second name's challenge, stay).
 */
import type { Logger } from '../../log.js';
import { DNSError } from './errors.js';
import { signMessage, tsigAlgorithm, verifyResponse, type TSIGKey } from './tsig.js';
import {
  CLASS,
  OPCODE,
  RCODE_NAMES,
  TYPE,
  decodeMessage,
  encodeMessage,
  exchangeTCP,
  formatServer,
  normalizeName,
  parseDNSServer,
  txtRdata,
  type DecodedMessage,
  type ResourceRecord,
  type Server,
} from './wire.js';

export interface RFC2136Config {
  server: string;
  keyName: string;
  keyAlgorithm: string;
  keySecret: string;
}

/** TTL of the challenge record: short, so that a retry's new value is not hidden by caches. */
export const CHALLENGE_TTL_S = 60;
/** How long one exchange with the server may take. */
export const EXCHANGE_TIMEOUT_MS = 10_000;
export class RFC2136Writer {
  readonly server: Server;
  private readonly key: TSIGKey;
  private readonly where: string;

  constructor(
    config: RFC2136Config,
    private readonly log: Logger,
    private readonly timeoutMs = EXCHANGE_TIMEOUT_MS,
  ) {
    const server = parseDNSServer(config.server);
    const algorithm = tsigAlgorithm(config.keyAlgorithm);
    // dnsConfigProblems reports these at start-up; this is the guard for callers that skip it.
    if (!server || !algorithm)
      throw new DNSError(
        'DNS_CONFIG',
        'rfc2136: server or keyAlgorithm is invalid (see dnsConfigProblems)',
      );
    this.server = server;
    this.where = formatServer(server);
    this.key = { name: config.keyName, algorithm, secret: Buffer.from(config.keySecret, 'base64') };
  }

  /** Adds the TXT record `value` at `fqdn` (RFC 2136 §2.5.1). */
  present(fqdn: string, value: string): Promise<void> {
    return this.change(fqdn, value, CLASS.IN, CHALLENGE_TTL_S, 'added');
  }

  /** Deletes that one TXT record: class NONE, TTL 0 (RFC 2136 §2.5.4); others at fqdn stay. */
  cleanup(fqdn: string, value: string): Promise<void> {
    return this.change(fqdn, value, CLASS.NONE, 0, 'removed');
  }

  private async change(
    fqdn: string,
    value: string,
    cls: number,
    ttl: number,
    done: string,
  ): Promise<void> {
    const zone = await this.findZone(fqdn);
    const record = { name: fqdn, type: TYPE.TXT, class: cls, ttl, rdata: txtRdata(value) };
    await this.update(zone, fqdn, record);
    this.log.info(
      { fqdn: normalizeName(fqdn), zone, server: this.where },
      `dns-01: TXT record ${done}`,
    );
  }

  /**
   * The zone that holds `fqdn`: the owner of the SOA record the server gives for it (in
   * the answer at an apex, in the authority section below one), trying each parent in turn.
   */
  async findZone(fqdn: string): Promise<string> {
    const labels = normalizeName(fqdn).split('.');
    let last = '';
    for (let i = 0; i < labels.length; i++) {
      const candidate = labels.slice(i).join('.');
      const response = await this.exchange(
        encodeMessage(OPCODE.QUERY, { name: candidate, type: TYPE.SOA }),
      );
      const soa = [...(response.answers ?? []), ...(response.authorities ?? [])].find(
        (r) => r.type === 'SOA',
      );
      if (soa) return normalizeName(soa.name);
      last = response.rcode ?? '';
    }
    throw new DNSError(
      'DNS_NO_ZONE',
      `${this.where} is not authoritative for any zone above ${normalizeName(fqdn)} (it answered ${last}): point rfc2136.server at the primary server of that zone`,
    );
  }

  private async update(zone: string, fqdn: string, record: ResourceRecord): Promise<void> {
    const response = await this.exchange(
      encodeMessage(OPCODE.UPDATE, { name: zone, type: TYPE.SOA }, [record]),
    );
    const rcode = response.rcode ?? 'NOERROR';
    if (rcode === 'NOERROR') return;
    const name = normalizeName(fqdn);
    const problem: Record<string, string> = {
      REFUSED: `${this.where} refused the update for ${zone}: let the key update it in named.conf (zone "${zone}" { … allow-update { key "${this.key.name}"; }; } or an update-policy grant covering ${name} TXT)`,
      NOTAUTH: `${this.where} is not authoritative for ${zone} (NOTAUTH): point rfc2136.server at the zone's primary server`,
      NOTZONE: `${this.where} says ${name} is not in zone ${zone} (NOTZONE)`,
      SERVFAIL: `${this.where} failed to apply the update to ${zone} (SERVFAIL): see its log (is the zone file's directory writable for the journal?)`,
      NOTIMP: `${this.where} does not implement dynamic updates (NOTIMP): use the zone's primary server`,
    };
    throw new DNSError(
      rcode === 'REFUSED' ? 'DNS_UPDATE_REFUSED' : 'DNS_UPDATE_FAILED',
      problem[rcode] ?? `${this.where} rejected the update of ${name} in ${zone} with ${rcode}`,
    );
  }

  /** One signed exchange whose answer's signature is checked before anything in it is believed. */
  private async exchange(message: Buffer): Promise<DecodedMessage> {
    const { signed, mac } = signMessage(message, this.key);
    const raw = await exchangeTCP(this.server, signed, this.timeoutMs);
    const response = decodeMessage(raw, this.where);
    if (response.id !== message.readUInt16BE(0))
      throw new DNSError(
        'DNS_BAD_RESPONSE',
        `${this.where} answered a different message (ID mismatch)`,
      );
    const verdict = verifyResponse(raw, response.additionals ?? [], this.key, mac);
    const refused = `the TSIG key ${this.key.name} was refused by ${this.where}`;
    if (verdict.status === 'error' && verdict.error === 'BADTIME')
      throw new DNSError(
        'DNS_TSIG_REFUSED',
        `${refused} (BADTIME): this host's clock and the server's differ by more than 5 minutes; fix the time (NTP)`,
      );
    if (
      verdict.status === 'error' ||
      (verdict.status === 'unsigned' && response.rcode === 'NOTAUTH')
    )
      throw new DNSError(
        'DNS_TSIG_REFUSED',
        `${refused} (${verdict.status === 'error' ? verdict.error : 'NOTAUTH'}): check that keyName, keySecret and keyAlgorithm match the key in named.conf`,
      );
    if (verdict.status === 'unsigned')
      throw new DNSError(
        'DNS_RESPONSE_UNSIGNED',
        `${this.where} answered ${response.rcode ?? RCODE_NAMES[0]} without a TSIG signature, so the answer cannot be trusted: is ${this.where} the DNS server that knows key ${this.key.name}?`,
      );
    if (verdict.status === 'mismatch')
      throw new DNSError(
        'DNS_RESPONSE_FORGED',
        `the answer from ${this.where} does not carry a valid signature (${verdict.reason}): something between us and the server may be rewriting DNS`,
      );
    return response;
  }
}
