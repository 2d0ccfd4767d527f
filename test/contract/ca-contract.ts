/**
 * The one contract every CA backend passes (DESIGN.md §4; BullMQ's adapter-conformance suite), parameterised by
 * the backend's declared capabilities: key types, SAN types, subject attributes and EKUs it cannot honour are
 * left out of the tables (filtered, not skipped), so a backend is held to exactly what it claims.
 *
 * Certificates are judged by `openssl` (chain, strict RFC 5280 checks, purpose, SPKI) and by parsing the DER.
 *
 * Usage: `describeCaContract('local CA', async () => ({ ca, capabilities, caCertificatePem, teardown }))`.
 * `setup` runs while the suite is collected (its capabilities decide which tests exist); `teardown` after it.
 * A backend with the pending ability (`poll` + `cancel`) must be set up so that `issue` answers `pending` first (e.g. a fake that approves an
 * order only when `resolvePending` is called, or after a delay).
 */
import { randomBytes } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  ExtendedKeyUsage,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
} from '@peculiar/asn1-x509';
import { afterAll, describe, expect, it } from 'vitest';
import type { CaConnection } from '../../src/ca/connection.ts';
import type {
  CaCapabilities,
  CertificateAuthority,
  IssueRequest,
  IssueResult,
  PendingRef,
  RevocationRequest,
  RevocationResult,
  StepContext,
} from '../../src/ca/types.ts';
import { TerminalError } from '../../src/errors.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { parseCertificate, type ParsedCertificate } from '../../src/pki/certificate.ts';
import { bytesEqual } from '../../src/pki/der.ts';
import { EXTENDED_KEY_USAGES } from '../../src/pki/extended-key-usage.ts';
import { UPN_OID } from '../../src/pki/name-encoding.ts';
import { splitPemBundle } from '../../src/pki/pem.ts';
import type {
  DistinguishedName,
  KeyType,
  LeafKeyUsage,
  RenderedProfile,
  SubjectAltName,
  SubjectAltNameType,
} from '../../src/pki/types.ts';
import type { DeviceKey, PoolKeyType } from '../../src/sandbox/key-pool.ts';
import { testKeyPool } from '../support/keys.ts';
import { issueRequestFor, subjectAttribute } from '../support/issue-request.ts';
import { certificateText, spkiDerOfCertificate, subjectLines, verifyCertificate } from '../support/openssl.ts';

export interface CaContractEnvironment {
  /** Built through the backend's registry entry (`connectCa`), as the daemon builds it. */
  readonly connection: CaConnection;
  readonly capabilities: CaCapabilities;
  /** The trust anchor the issued leaves chain to (root; intermediates come from `chainPem`). */
  readonly caCertificatePem: string;
  /** For backends that pend: make the CA decide the request behind `ref` (approve the order). */
  resolvePending?(ref: PendingRef): Promise<void> | void;
  /** For a backend with `revoke`: what a revocation answers, and a look at the CA's side of it. */
  readonly revocation?: {
    readonly expected: RevocationResult['status'];
    /** Checks the CA received the revocation of `serial` with `reason` (e.g. the fake's request log). */
    check?(serial: string, ref: PendingRef | undefined): void;
  };
  teardown(): Promise<void>;
}

const DAY_MS = 86_400_000;
/** A leaf must be backdated at least this much (DESIGN.md §4: "a few minutes" for device clock skew)… */
const MIN_BACKDATE_MS = 60_000;
/** …and not absurdly far. */
const MAX_BACKDATE_MS = DAY_MS;
const SERIAL_SAMPLE = 8;

const attribute = subjectAttribute;

interface ProfileCase {
  readonly label: string;
  readonly profile: RenderedProfile;
}

/**
 * Profiles as the workflow renders them: a device profile (serial in CN, directory id in a URI or DNS SAN) and a
 * user profile (email in CN and in an email or UPN SAN). The email contains `,` and `+`: it must stay one CN.
 */
function profileCases(capabilities: CaCapabilities): ProfileCase[] {
  const email = 'a,b+c@example.com';
  const deviceId = randomBytes(6).toString('hex');
  const serial = `5CD${randomBytes(4).toString('hex').toUpperCase()}`;
  const attributeAllowed = (type: string) =>
    capabilities.subjectAttributes === 'any' || capabilities.subjectAttributes.includes(type);
  const ekuAllowed = (oid: string) =>
    capabilities.extendedKeyUsages === 'any' || capabilities.extendedKeyUsages.includes(oid);
  const subject = (...rdns: DistinguishedName[number][number][]) =>
    rdns.filter((a) => attributeAllowed(a.type)).map((a) => [a]);
  const ekus = [EXTENDED_KEY_USAGES.clientAuth as string].filter(ekuAllowed);
  const validityMs = Math.min(30, capabilities.maxValidityDays) * DAY_MS;
  const cases: (ProfileCase & { sanType: SubjectAltNameType })[] = [
    {
      label: 'device profile with a URI SAN',
      sanType: 'uri',
      profile: {
        name: 'device_profile',
        subject: subject(attribute('CN', serial), attribute('O', 'Example Org')),
        subjectAltNames: [{ type: 'uri', value: `urn:chromeos:device:${deviceId}` }],
        validityMs,
        extendedKeyUsages: ekus,
      },
    },
    {
      label: 'user profile with an email SAN',
      sanType: 'email',
      profile: {
        name: 'user_profile',
        subject: subject(attribute('CN', email)),
        subjectAltNames: [{ type: 'email', value: email }],
        validityMs: Math.min(7, capabilities.maxValidityDays) * DAY_MS,
        extendedKeyUsages: ekus,
      },
    },
    {
      label: 'device profile with a DNS SAN',
      sanType: 'dns',
      profile: {
        name: 'device_dns_profile',
        subject: subject(attribute('CN', serial)),
        subjectAltNames: [{ type: 'dns', value: `d-${deviceId}.devices.example.com` }],
        validityMs,
        extendedKeyUsages: ekus,
      },
    },
    {
      label: 'user profile with a UPN SAN',
      sanType: 'upn',
      profile: {
        name: 'user_upn_profile',
        subject: subject(attribute('CN', email), attribute('O', 'Example Org')),
        subjectAltNames: [{ type: 'upn', value: 'a.user@corp.example.com' }],
        validityMs,
        extendedKeyUsages: ekus,
      },
    },
  ];
  return cases.filter((c) => capabilities.subjectAltNameTypes.includes(c.sanType));
}

const KEY_CASES: readonly { label: string; poolType: PoolKeyType; keyType: KeyType }[] = [
  { label: 'RSA-2048', poolType: 'rsa-2048', keyType: 'rsa' },
  { label: 'EC P-256', poolType: 'ec-p256', keyType: 'ec' },
];

function context(): StepContext {
  return { signal: new AbortController().signal, log: silentLogger() };
}

/**
 * An IssueRequest as the workflow makes it. The CSR deliberately carries a different subject and SAN: backends must
 * take every field from the profile.
 */
function issueRequest(ca: CertificateAuthority, key: DeviceKey, profile: RenderedProfile): IssueRequest {
  return issueRequestFor(key, profile, {
    caConnection: ca.name,
    processId: `contract-${randomBytes(8).toString('hex')}`,
    csrSubject: [[attribute('CN', 'the CSR subject must not be copied')]],
    csrSubjectAltNames: [{ type: 'dns', value: 'csr-san-must-not-be-copied.example.net' }],
  });
}

/** Non-default keyUsages per key type, and how `openssl x509 -text` prints them. */
const KEY_USAGE_CASES: readonly {
  poolType: PoolKeyType;
  keyUsages: readonly LeafKeyUsage[];
  openssl: string;
}[] = [
  { poolType: 'ec-p256', keyUsages: ['digitalSignature', 'keyAgreement'], openssl: 'Digital Signature, Key Agreement' },
  { poolType: 'ec-p256', keyUsages: ['keyAgreement'], openssl: 'Key Agreement' },
  { poolType: 'rsa-2048', keyUsages: ['digitalSignature'], openssl: 'Digital Signature' },
  {
    poolType: 'rsa-2048',
    keyUsages: ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment'],
    openssl: 'Digital Signature, Non Repudiation, Key Encipherment, Data Encipherment',
  },
];

const MAX_POLLS = 50;

/** Issues and follows `pending` through `poll` until the CA decides. Records whether it pended. */
async function issueToCompletion(
  env: CaContractEnvironment,
  request: IssueRequest,
): Promise<{ result: IssueResult; pended: boolean; polls: number; lastRef: PendingRef | undefined }> {
  let result = await env.connection.ca.issue(request, context());
  let polls = 0;
  let lastRef: PendingRef | undefined;
  const pended = result.status === 'pending';
  while (result.status === 'pending') {
    const pending = env.connection.abilities.pending;
    expect(pending, 'a backend that returns pending must implement poll and cancel').toBeDefined();
    expect(polls, `still pending after ${MAX_POLLS} polls`).toBeLessThan(MAX_POLLS);
    const { ref, retryAfterMs } = result;
    lastRef = ref;
    expect(JSON.stringify(ref).length, 'PendingRef stays small').toBeLessThan(2_000);
    if (env.resolvePending !== undefined) await env.resolvePending(ref);
    else await new Promise((resolve) => setTimeout(resolve, Math.min(Math.max(retryAfterMs, 10), 2_000)));
    result = await pending!.poll(ref, request, context());
    polls += 1;
  }
  return { result, pended, polls, lastRef };
}

interface Issued {
  readonly request: IssueRequest;
  readonly pem: string;
  readonly leaf: ParsedCertificate;
  readonly chain: readonly string[];
  readonly issuer: ParsedCertificate;
  readonly startedAt: number;
  readonly finishedAt: number;
}

async function issueOne(env: CaContractEnvironment, request: IssueRequest): Promise<Issued> {
  const startedAt = Date.now();
  const { result } = await issueToCompletion(env, request);
  const finishedAt = Date.now();
  if (result.status !== 'issued') throw new Error(`expected issued, got ${JSON.stringify(result)}`);
  const blocks = splitPemBundle(result.certificatePem);
  expect(
    blocks.map((b) => b.label),
    'certificatePem holds exactly one certificate (Chrome takes no chain)',
  ).toEqual(['CERTIFICATE']);
  const leaf = parseCertificate(result.certificatePem);
  const chain = result.chainPem ?? [];
  const candidates = [...chain, env.caCertificatePem].map((pem) => parseCertificate(pem));
  const issuer = candidates.find((c) => bytesEqual(c.subjectNameDer, leaf.issuerNameDer));
  if (issuer === undefined) throw new Error('the leaf issuer is neither in chainPem nor the CA certificate');
  return { request, pem: result.certificatePem, leaf, chain, issuer, startedAt, finishedAt };
}

function extensionOf<T>(leaf: ParsedCertificate, oid: string, type: new () => T): T | undefined {
  const extension = leaf.asn1.tbsCertificate.extensions?.find((e) => e.extnID === oid);
  return extension === undefined ? undefined : AsnConvert.parse(extension.extnValue, type);
}

function subjectAttributes(name: DistinguishedName): string[] {
  return name
    .flat()
    .map((a) => `${a.oid}=${a.value}`)
    .sort();
}

function leafSubjectAttributes(leaf: ParsedCertificate): string[] {
  return leaf.asn1.tbsCertificate.subject
    .flatMap((rdn) => rdn.map((atv) => `${atv.type}=${atv.value.toString()}`))
    .sort();
}

function sansOf(leaf: ParsedCertificate): SubjectAltName[] {
  const san = extensionOf(leaf, id_ce_subjectAltName, SubjectAlternativeName);
  return (san ?? []).map((name): SubjectAltName => {
    if (name.rfc822Name !== undefined) return { type: 'email', value: name.rfc822Name };
    if (name.dNSName !== undefined) return { type: 'dns', value: name.dNSName };
    if (name.uniformResourceIdentifier !== undefined) return { type: 'uri', value: name.uniformResourceIdentifier };
    if (name.otherName?.typeId === UPN_OID) {
      // value is the [0] EXPLICIT content: a UTF8String TLV (short form for these lengths).
      const bytes = new Uint8Array(name.otherName.value);
      expect(bytes[0], 'UPN is a UTF8String').toBe(0x0c);
      return { type: 'upn', value: new TextDecoder().decode(bytes.subarray(2)) };
    }
    throw new Error(`unexpected GeneralName ${JSON.stringify(name)}`);
  });
}

const bySan = (a: SubjectAltName, b: SubjectAltName) => `${a.type}:${a.value}`.localeCompare(`${b.type}:${b.value}`);

function popcount(bytes: Uint8Array): number {
  let n = 0;
  for (const byte of bytes) for (let b = byte; b > 0; b >>= 1) n += b & 1;
  return n;
}

function serialBytes(leaf: ParsedCertificate): Uint8Array {
  return Uint8Array.from(Buffer.from(leaf.serialHex.length % 2 === 0 ? leaf.serialHex : `0${leaf.serialHex}`, 'hex'));
}

export function describeCaContract(label: string, setup: () => Promise<CaContractEnvironment>): void {
  describe(`CA contract: ${label}`, async () => {
    const env = await setup();
    afterAll(() => env.teardown());
    const pool = await testKeyPool();
    const keyCases = KEY_CASES.filter((k) => env.capabilities.keyTypes.includes(k.keyType));
    const profiles = profileCases(env.capabilities);

    it('declares capabilities that can be tested', () => {
      expect(keyCases.length).toBeGreaterThan(0);
      expect(profiles.length).toBeGreaterThan(0);
      expect(env.capabilities.maxValidityDays).toBeGreaterThan(0);
    });

    it('declares a fault component of its own, not one the workflow owns', () => {
      expect(env.connection.faultComponent).toMatch(/^[a-z][a-z0-9-]*$/);
      expect(['chrome', 'store', 'pubsub']).not.toContain(env.connection.faultComponent);
    });

    describe.each(keyCases)('$label device key', ({ poolType, keyType }) => {
      describe.each(profiles)('$label', ({ profile }) => {
        let issued: Promise<Issued> | undefined;
        // Issued once per (key, profile); the checks below each look at one property of the same certificate.
        const get = () => (issued ??= issueOne(env, issueRequest(env.connection.ca, pool.next(poolType), profile)));

        it('issues a leaf that openssl verifies against the CA (x509_strict, client purpose)', async () => {
          const { pem, chain } = await get();
          const result = await verifyCertificate(pem, env.caCertificatePem, {
            untrusted: chain,
            purpose: profile.extendedKeyUsages.includes(EXTENDED_KEY_USAGES.clientAuth as string)
              ? 'sslclient'
              : undefined,
          });
          expect(result.ok, `${result.stdout}\n${result.stderr}`).toBe(true);
        });

        it('carries the device SPKI byte for byte (parsed and as openssl sees it)', async () => {
          const { pem, leaf, request } = await get();
          expect(bytesEqual(leaf.spkiDer, request.spkiDer)).toBe(true);
          expect(bytesEqual(await spkiDerOfCertificate(pem), request.spkiDer)).toBe(true);
        });

        it('has the subject and SANs of the profile, not of the CSR', async () => {
          const { pem, leaf } = await get();
          expect(leafSubjectAttributes(leaf)).toEqual(subjectAttributes(profile.subject));
          expect(sansOf(leaf).sort(bySan)).toEqual([...profile.subjectAltNames].sort(bySan));
          const cn = profile.subject.flat().find((a) => a.type === 'CN');
          if (cn !== undefined) expect(await subjectLines(pem, 'x509')).toContain(`CN=${cn.value}`);
        });

        it(`has the profile's EKUs and a ${keyType === 'ec' ? 'digitalSignature' : 'digitalSignature/keyEncipherment'} key usage`, async () => {
          const { leaf } = await get();
          const eku = extensionOf(leaf, id_ce_extKeyUsage, ExtendedKeyUsage) ?? [];
          expect([...eku].sort()).toEqual([...profile.extendedKeyUsages].sort());
          const keyUsage = extensionOf(leaf, id_ce_keyUsage, KeyUsage);
          expect(keyUsage, 'keyUsage present').toBeDefined();
          const flags = keyUsage!.toNumber();
          expect(flags & KeyUsageFlags.digitalSignature).not.toBe(0);
          expect(flags & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)).toBe(0);
          // keyEncipherment is an RSA operation; an EC key cannot do it.
          if (keyType === 'ec') expect(flags & KeyUsageFlags.keyEncipherment).toBe(0);
          const basic = extensionOf(leaf, id_ce_basicConstraints, BasicConstraints);
          expect(basic?.cA ?? false, 'not a CA').toBe(false);
        });

        it('is valid for at most the profile validity, backdated, within the CA', async () => {
          const { leaf, issuer, startedAt, finishedAt } = await get();
          const notBefore = leaf.notBefore.getTime();
          const notAfter = leaf.notAfter.getTime();
          expect(notAfter).toBeLessThanOrEqual(finishedAt + profile.validityMs + 1_000);
          expect(notAfter).toBeLessThanOrEqual(issuer.notAfter.getTime());
          if (issuer.notAfter.getTime() > finishedAt + profile.validityMs) {
            // Not capped by the CA: the backend honoured the requested validity (within a day of rounding).
            expect(notAfter).toBeGreaterThanOrEqual(startedAt + profile.validityMs - DAY_MS);
          }
          expect(notBefore).toBeLessThanOrEqual(startedAt - MIN_BACKDATE_MS);
          expect(notBefore).toBeGreaterThanOrEqual(startedAt - MAX_BACKDATE_MS);
        });
      });
    });

    // A backend that takes the keyUsage from the profile must write exactly the profile's bits (judged by openssl).
    const keyUsageCases = KEY_USAGE_CASES.filter(
      (c) => env.capabilities.keyUsages === 'profile' && keyCases.some((k) => k.poolType === c.poolType),
    );
    const [usageProfile] = profiles;
    if (usageProfile !== undefined) {
      it.each(keyUsageCases)(
        "writes the profile's keyUsages $keyUsages for a $poolType key",
        async ({ poolType, keyUsages, openssl }) => {
          const profile = { ...usageProfile.profile, keyUsages };
          const { pem } = await issueOne(env, issueRequest(env.connection.ca, pool.next(poolType), profile));
          expect(await certificateText(pem)).toMatch(new RegExp(`Key Usage: critical\\s+${openssl}\\n`));
        },
      );
    }

    const [firstKey] = keyCases;
    const [firstProfile] = profiles;
    if (firstKey !== undefined && firstProfile !== undefined) {
      it(`never outlives the issuing CA (profile asks for ${env.capabilities.maxValidityDays} days)`, async () => {
        const profile = { ...firstProfile.profile, validityMs: env.capabilities.maxValidityDays * DAY_MS };
        const { leaf, issuer } = await issueOne(
          env,
          issueRequest(env.connection.ca, pool.next(firstKey.poolType), profile),
        );
        expect(leaf.notAfter.getTime()).toBeLessThanOrEqual(issuer.notAfter.getTime());
      });

      it(`gives unique serials with at least 64 bits of entropy (${SERIAL_SAMPLE} issues)`, async () => {
        const serials: Uint8Array[] = [];
        for (let i = 0; i < SERIAL_SAMPLE; i += 1) {
          const { leaf } = await issueOne(
            env,
            issueRequest(env.connection.ca, pool.next(firstKey.poolType), firstProfile.profile),
          );
          serials.push(serialBytes(leaf));
        }
        expect(new Set(serials.map((s) => Buffer.from(s).toString('hex'))).size).toBe(SERIAL_SAMPLE);
        for (const serial of serials) {
          // RFC 5280 §4.1.2.2: positive, at most 20 octets; CA/B BR: at least 64 bits from a CSPRNG.
          expect(serial.length).toBeGreaterThanOrEqual(8);
          expect(serial.length).toBeLessThanOrEqual(20);
        }
        // A counter or timestamp differs from its neighbour in a few low bits; random serials in about half.
        for (let i = 1; i < serials.length; i += 1) {
          const [a, b] = [serials[i - 1] as Uint8Array, serials[i] as Uint8Array];
          const width = Math.max(a.length, b.length);
          const pa = new Uint8Array(width);
          const pb = new Uint8Array(width);
          pa.set(a, width - a.length);
          pb.set(b, width - b.length);
          expect(popcount(pa.map((x, j) => x ^ (pb[j] as number)))).toBeGreaterThanOrEqual(8);
        }
      });

      it.runIf(env.connection.abilities.revocation !== undefined)(
        'revokes a certificate it issued (declared ability), and refuses one it has no issuance of',
        async () => {
          const revocation = env.connection.abilities.revocation;
          if (revocation === undefined) throw new Error('unreachable');
          const revoke = (request: RevocationRequest, ctx: StepContext) => revocation.revoke(request, ctx);
          const request = issueRequest(env.connection.ca, pool.next(firstKey.poolType), firstProfile.profile);
          const { result, lastRef } = await issueToCompletion(env, request);
          if (result.status !== 'issued') throw new Error('expected issued');
          const serial = parseCertificate(result.certificatePem).serialHex;
          const outcome = await revoke(
            {
              serial,
              certificatePem: result.certificatePem,
              ...(lastRef === undefined ? {} : { ref: lastRef }),
              reason: 'keyCompromise',
              comment: 'contract suite',
            },
            context(),
          );
          expect(outcome.status).toBe(env.revocation?.expected);
          env.revocation?.check?.(serial, lastRef);
          await expect(
            revoke(
              { serial: '01', certificatePem: result.certificatePem, reason: 'keyCompromise', comment: 'x' },
              context(),
            ),
          ).rejects.toBeInstanceOf(TerminalError);
        },
      );

      it.runIf(env.connection.abilities.pending !== undefined)(
        'answers pending first and resolves through poll',
        async () => {
          const request = issueRequest(env.connection.ca, pool.next(firstKey.poolType), firstProfile.profile);
          const { result, pended, polls } = await issueToCompletion(env, request);
          expect(pended).toBe(true);
          expect(polls).toBeGreaterThan(0);
          expect(result.status).toBe('issued');
          if (result.status === 'issued') {
            expect(bytesEqual(parseCertificate(result.certificatePem).spkiDer, request.spkiDer)).toBe(true);
          }
        },
      );
    }
  });
}
