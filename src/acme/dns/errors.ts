/**
 * Errors of the dns-01 writers and the propagation check. `code` tells them apart
 * (DNS_TSIG_REFUSED, DNS_UPDATE_REFUSED, DNS_TIMEOUT, DNS_HOOK_FAILED, …); the message
 * names the server or command and says what to do.
 */
import { RTPError } from '../../errors.js';

export class DNSError extends RTPError {}
