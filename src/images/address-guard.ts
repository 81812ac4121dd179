/**
 * Address classification for the SSRF guard: which IP addresses a server-side fetch may reach.
 * Only 'public' addresses are reachable by default; an operator allow-list (CIDR) can open others.
 * Ranges: IANA IPv4/IPv6 Special-Purpose Address Registries (RFC 6890 and updates), RFC 6598 (CGNAT),
 * RFC 6052 (NAT64), RFC 4193 (unique-local), RFC 4291 (IPv6 addressing); cloud metadata endpoints per vendor docs.
 */
import net from 'node:net';
import { AtelierError } from '../contract/errors.ts';

export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'metadata'
  | 'unique-local'
  | 'multicast'
  | 'unspecified'
  | 'reserved'
  | 'cgnat';

/** One parsed CIDR range; IPv4 ranges match IPv4 addresses and IPv4-mapped IPv6 addresses. */
export interface CidrRange {
  readonly family: 4 | 6;
  /** network address as an unsigned integer (32 or 128 bits) with host bits cleared */
  readonly network: bigint;
  readonly prefix: number;
  /** the text it was parsed from, for messages */
  readonly source: string;
}

export type AllowList = readonly CidrRange[];

interface V4Rule {
  cidr: string;
  cls: AddressClass;
}

/** Most specific rules first; the first match wins. Anything unmatched is 'public'. */
const V4_RULES: readonly V4Rule[] = [
  { cidr: '169.254.169.254/32', cls: 'metadata' }, // AWS, GCP, Azure, OpenStack, DigitalOcean …
  { cidr: '169.254.170.2/32', cls: 'metadata' }, // AWS ECS task metadata
  { cidr: '100.100.100.200/32', cls: 'metadata' }, // Alibaba Cloud
  { cidr: '192.0.0.192/32', cls: 'metadata' }, // Oracle Cloud (legacy)
  { cidr: '255.255.255.255/32', cls: 'reserved' }, // limited broadcast
  { cidr: '0.0.0.0/8', cls: 'unspecified' }, // "this network"
  { cidr: '10.0.0.0/8', cls: 'private' },
  { cidr: '100.64.0.0/10', cls: 'cgnat' },
  { cidr: '127.0.0.0/8', cls: 'loopback' },
  { cidr: '169.254.0.0/16', cls: 'link-local' },
  { cidr: '172.16.0.0/12', cls: 'private' },
  { cidr: '192.0.0.0/24', cls: 'reserved' }, // IETF protocol assignments
  { cidr: '192.0.2.0/24', cls: 'reserved' }, // TEST-NET-1
  { cidr: '192.88.99.0/24', cls: 'reserved' }, // 6to4 relay anycast (deprecated)
  { cidr: '192.168.0.0/16', cls: 'private' },
  { cidr: '198.18.0.0/15', cls: 'reserved' }, // benchmarking
  { cidr: '198.51.100.0/24', cls: 'reserved' }, // TEST-NET-2
  { cidr: '203.0.113.0/24', cls: 'reserved' }, // TEST-NET-3
  { cidr: '224.0.0.0/4', cls: 'multicast' },
  { cidr: '240.0.0.0/4', cls: 'reserved' }, // future use
];

const V6_RULES: readonly V4Rule[] = [
  { cidr: 'fd00:ec2::254/128', cls: 'metadata' }, // AWS IMDS over IPv6
  { cidr: '::/128', cls: 'unspecified' },
  { cidr: '::1/128', cls: 'loopback' },
  { cidr: '64:ff9b:1::/48', cls: 'reserved' }, // local-use NAT64 (RFC 8215)
  { cidr: '100::/64', cls: 'reserved' }, // discard-only
  { cidr: '2001::/32', cls: 'reserved' }, // Teredo: tunnels to an obfuscated IPv4 address
  { cidr: '2001:10::/28', cls: 'reserved' }, // ORCHID
  { cidr: '2001:20::/28', cls: 'reserved' }, // ORCHIDv2
  { cidr: '2001:db8::/32', cls: 'reserved' }, // documentation
  { cidr: '3fff::/20', cls: 'reserved' }, // documentation (RFC 9637)
  { cidr: '5f00::/16', cls: 'reserved' }, // SRv6 SIDs (RFC 9602)
  { cidr: 'fc00::/7', cls: 'unique-local' },
  { cidr: 'fe80::/10', cls: 'link-local' },
  { cidr: 'fec0::/10', cls: 'reserved' }, // site-local (deprecated)
  { cidr: 'ff00::/8', cls: 'multicast' },
];

const V4_TABLE = V4_RULES.map((r) => ({ range: parseCidr(r.cidr), cls: r.cls }));
const V6_TABLE = V6_RULES.map((r) => ({ range: parseCidr(r.cidr), cls: r.cls }));

const MAPPED_PREFIX = 0xffffn << 32n; // ::ffff:0:0/96
const NAT64_PREFIX = 0x64ff9bn << 96n; // 64:ff9b::/96
const LOW_32 = (1n << 32n) - 1n;

/** Classify an IPv4 or IPv6 address (text form, optional `%zone`). Throws INVALID_INPUT for anything else. */
export function classifyAddress(ip: string): AddressClass {
  const parsed = parseIp(ip);
  return parsed.family === 4 ? classifyV4(parsed.value) : classifyV6(parsed.value);
}

function classifyV4(v: bigint): AddressClass {
  for (const { range, cls } of V4_TABLE) if (inRange(v, range)) return cls;
  return 'public';
}

function classifyV6(v: bigint): AddressClass {
  // Addresses that carry an IPv4 address reach that IPv4 host: judge the embedded one.
  if (v >> 32n === MAPPED_PREFIX >> 32n) return classifyV4(v & LOW_32); // ::ffff:a.b.c.d
  if (v >> 32n === NAT64_PREFIX >> 32n) return classifyV4(v & LOW_32); // 64:ff9b::a.b.c.d
  if (v >> 112n === 0x2002n) {
    // 6to4 (2002:AABB:CCDD::/48): refuse when the embedded IPv4 is not public
    const embedded = classifyV4((v >> 80n) & LOW_32);
    return embedded === 'public' ? 'public' : embedded;
  }
  for (const { range, cls } of V6_TABLE) if (inRange(v, range)) return cls;
  // ::/96 IPv4-compatible (deprecated) and everything else outside 2000::/3 global unicast.
  if (v >> 125n !== 1n) return 'reserved';
  return 'public';
}

/** Parse CIDR strings (`10.0.0.0/8`, `::1/128`, or a bare address = one host). Throws INVALID_INPUT. */
export function parseAllowList(cidrs: readonly string[]): AllowList {
  return cidrs.map((c) => parseCidr(c));
}

/** True when `ip` falls in any range of the allow-list; IPv4-mapped IPv6 addresses match IPv4 ranges. */
export function isAllowed(ip: string, allowList: AllowList): boolean {
  const parsed = unmap(parseIp(ip));
  return allowList.some((r) => r.family === parsed.family && inRange(parsed.value, r));
}

function parseCidr(text: string): CidrRange {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addrText = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const addr = parseIp(addrText, text);
  const width = addr.family === 4 ? 32 : 128;
  let prefix = width;
  if (slash >= 0) {
    const p = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > width) {
      throw new AtelierError('INVALID_INPUT', `invalid CIDR ${JSON.stringify(text)}: prefix must be 0–${width}`);
    }
    prefix = Number(p);
  }
  return { family: addr.family, network: addr.value & prefixMask(prefix, width), prefix, source: text };
}

function inRange(v: bigint, r: CidrRange): boolean {
  const width = r.family === 4 ? 32 : 128;
  return (v & prefixMask(r.prefix, width)) === r.network;
}

function prefixMask(prefix: number, width: number): bigint {
  const all = (1n << BigInt(width)) - 1n;
  return all ^ ((1n << BigInt(width - prefix)) - 1n);
}

interface ParsedIp {
  family: 4 | 6;
  value: bigint;
}

/** IPv4-mapped IPv6 → IPv4 (for allow-list matching). */
function unmap(p: ParsedIp): ParsedIp {
  if (p.family === 6 && p.value >> 32n === MAPPED_PREFIX >> 32n) return { family: 4, value: p.value & LOW_32 };
  return p;
}

function parseIp(ip: string, quoted: string = ip): ParsedIp {
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  const noZone = bare.split('%')[0]!;
  const kind = net.isIP(noZone);
  if (kind === 4) return { family: 4, value: parseV4(noZone) };
  if (kind === 6) return { family: 6, value: parseV6(noZone) };
  throw new AtelierError('INVALID_INPUT', `not an IP address: ${JSON.stringify(quoted)}`);
}

function parseV4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

/** Expects text already validated by net.isIPv6 (so at most one `::`, valid groups). */
function parseV6(s: string): bigint {
  let text = s.toLowerCase();
  // A trailing dotted quad stands for the last two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseV4(tail);
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headGroups.length - restGroups.length;
  const groups = rest === undefined ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...restGroups];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) & ((1n << 128n) - 1n);
}
