// Classifier tests only: nothing here opens a connection.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { classifyAddress, isAllowed, parseAllowList, type AddressClass } from './address-guard.ts';
import { AtelierError } from '../contract/errors.ts';

const CASES: Array<[string, AddressClass]> = [
  // IPv4
  ['8.8.8.8', 'public'],
  ['1.1.1.1', 'public'],
  ['93.184.216.34', 'public'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['10.0.0.1', 'private'],
  ['10.255.255.255', 'private'],
  ['11.0.0.0', 'public'],
  ['172.15.255.255', 'public'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.0', 'public'],
  ['192.168.1.1', 'private'],
  ['100.63.255.255', 'public'],
  ['100.64.0.1', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['100.128.0.0', 'public'],
  ['100.100.100.200', 'metadata'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.1.1', 'link-local'],
  ['169.254.169.254', 'metadata'],
  ['169.254.170.2', 'metadata'],
  ['192.0.0.8', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['198.51.100.7', 'reserved'],
  ['203.0.113.9', 'reserved'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  // IPv6
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['[::1]', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['2606:4700:4700::1111', 'public'],
  ['2001:4860:4860::8888', 'public'],
  ['2001:db8::1', 'reserved'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'], // Teredo
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf:ffff::1', 'link-local'],
  ['fec0::1', 'reserved'],
  ['fc00::1', 'unique-local'],
  ['fd12:3456:789a::1', 'unique-local'],
  ['fd00:ec2::254', 'metadata'],
  ['FD00:EC2:0:0:0:0:0:254', 'metadata'],
  ['ff02::1', 'multicast'],
  ['100::1', 'reserved'],
  ['::127.0.0.1', 'reserved'], // IPv4-compatible (deprecated)
  ['4000::1', 'reserved'], // outside 2000::/3
  // IPv4-mapped, in both spellings
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::FFFF:7F00:0001', 'loopback'],
  ['0:0:0:0:0:ffff:7f00:1', 'loopback'],
  ['::ffff:169.254.169.254', 'metadata'],
  ['::ffff:a9fe:a9fe', 'metadata'],
  ['::ffff:10.1.2.3', 'private'],
  ['::ffff:0.0.0.0', 'unspecified'],
  ['::ffff:8.8.8.8', 'public'],
  // NAT64 and 6to4 carry an IPv4 address too
  ['64:ff9b::127.0.0.1', 'loopback'],
  ['64:ff9b::a9fe:a9fe', 'metadata'],
  ['64:ff9b::8.8.8.8', 'public'],
  ['64:ff9b:1::1', 'reserved'],
  ['2002:7f00:1::1', 'loopback'],
  ['2002:c0a8:101::1', 'private'],
  ['2002:808:808::1', 'public'],
];

describe('classifyAddress', () => {
  for (const [ip, cls] of CASES) {
    it(`${ip} → ${cls}`, () => assert.equal(classifyAddress(ip), cls));
  }

  it('throws INVALID_INPUT on non-addresses, quoting them', () => {
    for (const bad of ['localhost', '', '1.2.3', '256.0.0.1', '01.2.3.4', '::1::2', 'example.com', '1.2.3.4/8']) {
      assert.throws(
        () => classifyAddress(bad),
        (e: unknown) => e instanceof AtelierError && e.code === 'INVALID_INPUT' && e.message.includes(JSON.stringify(bad)),
      );
    }
  });
});

describe('parseAllowList / isAllowed', () => {
  const allow = parseAllowList(['127.0.0.0/8', '::1/128', '10.1.0.0/16', 'fd00::/8', '192.168.5.5']);

  it('parses prefixes and bare hosts', () => {
    assert.deepEqual(
      allow.map((r) => [r.family, r.prefix]),
      [
        [4, 8],
        [6, 128],
        [4, 16],
        [6, 8],
        [4, 32],
      ],
    );
    assert.equal(allow[0]!.network, 0x7f000000n);
    assert.equal(parseAllowList(['10.1.2.3/8'])[0]!.network, 0x0a000000n, 'host bits cleared');
  });

  it('matches IPv4, IPv6 and IPv4-mapped addresses', () => {
    assert.equal(isAllowed('127.0.0.1', allow), true);
    assert.equal(isAllowed('127.200.0.9', allow), true);
    assert.equal(isAllowed('::ffff:127.0.0.1', allow), true);
    assert.equal(isAllowed('::ffff:7f00:1', allow), true);
    assert.equal(isAllowed('::1', allow), true);
    assert.equal(isAllowed('::2', allow), false);
    assert.equal(isAllowed('10.1.255.255', allow), true);
    assert.equal(isAllowed('10.2.0.0', allow), false);
    assert.equal(isAllowed('fd12::1', allow), true);
    assert.equal(isAllowed('fc00::1', allow), false);
    assert.equal(isAllowed('192.168.5.5', allow), true);
    assert.equal(isAllowed('192.168.5.6', allow), false);
    assert.equal(isAllowed('8.8.8.8', allow), false);
    assert.equal(isAllowed('8.8.8.8', parseAllowList(['0.0.0.0/0'])), true);
    assert.equal(isAllowed('8.8.8.8', []), false);
  });

  it('rejects malformed CIDRs with INVALID_INPUT', () => {
    for (const bad of ['127.0.0.0/33', '::1/129', 'nope/8', '10.0.0.0/', '10.0.0.0/-1', 'localhost']) {
      assert.throws(() => parseAllowList([bad]), (e: unknown) => e instanceof AtelierError && e.code === 'INVALID_INPUT');
    }
  });
});
