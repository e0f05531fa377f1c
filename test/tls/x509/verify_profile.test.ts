/**
 * The certificate profiles of path validation (issue 9 §3): one certificate per rule, made
 * by `openssl x509 -new`, refused with its code and a one-line reason naming the rule and
 * the certificate. RFC 5280 rules hold under both profiles; the web PKI's leaf and root
 * rules only under "strict" (the default), and "rfc5280" accepts those chains. Where
 * OpenSSL 3.0's `verify -x509_strict` checks the same rule, it must refuse too. Also the
 * valid chains that must not be refused.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { VerifyErrorCode } from "../../../src/tls/x509/errors.ts";
import { type ValidationProfile, verifyChain } from "../../../src/tls/x509/verify.ts";
import { assertOk, assertRefused } from "./chains.ts";
import { CA_EXT, type Issued, serverExt, TestPki } from "./pki.ts";

/** A chain to verify: the leaf, its trust anchors and untrusted intermediates. */
interface Chain {
  leaf: Issued;
  roots: Issued[];
  intermediates: Issued[];
}

interface Case {
  rule: string;
  build: () => Promise<Chain>;
  code: VerifyErrorCode;
  reason: RegExp;
  /** A web-profile rule: "rfc5280" accepts the chain. */
  webOnly?: boolean;
  /** Verify under this profile rather than the default. */
  profile?: ValidationProfile;
  /** OpenSSL 3.0's `verify -x509_strict -purpose sslserver` refuses it too (cross-check). */
  opensslRefuses?: boolean;
}

const HOST = "leaf.example.com";
const LEAF_EXT = serverExt(`DNS:${HOST}`);

describe("certificate profiles: each rule refuses its certificate with a reason", () => {
  let pki: TestPki;
  let root: Issued;
  let inter: Issued;
  let n = 0;
  const unique = (label: string) => `${label}-${++n}`;

  /** A leaf under `issuer` (default: the good intermediate) with these extensions. */
  const leaf = async (
    ext: string[],
    options: { issuer?: Issued; subject?: string; serial?: string } = {},
  ): Promise<Chain> => {
    const issuer = options.issuer ?? inter;
    const made = await pki.make(unique("leaf"), {
      subject: options.subject ?? `/CN=${HOST}`,
      issuer,
      ext,
      ...(options.serial ? { serial: options.serial } : {}),
    });
    return { leaf: made, roots: [root], intermediates: issuer === inter ? [inter] : [issuer, inter] };
  };
  /** An intermediate under the good one with these extensions, and a good leaf under it. */
  const underCa = async (caExt: string[], leafExt = LEAF_EXT, subject = "/CN=Sub CA"): Promise<Chain> => {
    const ca = await pki.make(unique("ca"), { subject, issuer: inter, ext: caExt });
    return leaf(leafExt, { issuer: ca });
  };
  /** A self-signed root with these extensions and a good leaf directly under it. */
  const underRoot = async (rootExt: string[]): Promise<Chain> => {
    const otherRoot = await pki.make(unique("root"), { subject: "/CN=Other Root", ext: rootExt });
    const made = await pki.make(unique("leaf"), { subject: `/CN=${HOST}`, issuer: otherRoot, ext: LEAF_EXT });
    return { leaf: made, roots: [otherRoot], intermediates: [] };
  };
  const without = (prefix: string, lines = LEAF_EXT) => lines.filter((l) => !l.startsWith(prefix));

  before(async () => {
    pki = await TestPki.create();
    root = await pki.make("root", { subject: "/O=hsmkit test/CN=Profile Root", ext: CA_EXT });
    inter = await pki.make("inter", {
      subject: "/O=hsmkit test/CN=Profile Intermediate",
      issuer: root,
      ext: CA_EXT,
    });
  });

  after(async () => {
    await pki.cleanup();
  });

  const cases: Case[] = [
    {
      rule: "serial number zero",
      build: () => leaf(LEAF_EXT, { serial: "0" }),
      code: "profile",
      reason: /certificate 'CN=leaf\.example\.com' has serial number zero/,
    },
    {
      rule: "negative serial number",
      build: () => leaf(LEAF_EXT, { serial: "-5" }),
      code: "profile",
      reason: /'CN=leaf\.example\.com' has a negative serial number/,
    },
    {
      rule: "serial number longer than 20 octets",
      build: () => leaf(LEAF_EXT, { serial: "0x0102030405060708090a0b0c0d0e0f101112131415" }),
      code: "profile",
      reason: /has a serial number of 21 octets \(RFC 5280 allows at most 20\)/,
    },
    {
      rule: "empty issuer name",
      opensslRefuses: true,
      build: async () => {
        const nameless = await pki.make(unique("nameless-ca"), { subject: "/", issuer: inter, ext: CA_EXT });
        return leaf(LEAF_EXT, { issuer: nameless });
      },
      code: "profile",
      reason: /certificate 'CN=leaf\.example\.com' has an empty issuer name/,
    },
    {
      rule: "a CA with an empty subject",
      opensslRefuses: true,
      // As a leaf (under rfc5280, which lets a CA be a leaf): as an issuer, its child's empty issuer is found first.
      build: () => leaf([...CA_EXT, `subjectAltName=critical,DNS:${HOST}`], { subject: "/" }),
      profile: "rfc5280",
      code: "profile",
      reason:
        /certificate with empty subject \(serial [0-9a-f]+\) is a CA certificate with an empty subject name/,
    },
    {
      rule: "empty subject with a non-critical subjectAltName",
      opensslRefuses: true,
      build: () => leaf(LEAF_EXT, { subject: "/" }),
      code: "profile",
      reason: /has an empty subject name but its subjectAltName is not critical/,
    },
    {
      rule: "critical subjectAltName next to a non-empty subject (web profile)",
      build: () => leaf([...without("subjectAltName"), `subjectAltName=critical,DNS:${HOST}`]),
      webOnly: true,
      code: "profile",
      reason: /'CN=leaf\.example\.com' marks subjectAltName critical although its subject is not empty/,
    },
    {
      rule: "no authorityKeyIdentifier on a certificate that is not self-signed",
      opensslRefuses: true,
      // OpenSSL 3 adds the key identifiers unless told "none".
      build: () => leaf([...without("authorityKeyIdentifier"), "authorityKeyIdentifier=none"]),
      code: "profile",
      reason:
        /'CN=leaf\.example\.com' has no authorityKeyIdentifier \(required on every certificate that is not self-signed\)/,
    },
    {
      rule: "no authorityKeyIdentifier on a self-issued CA under another key (key rollover)",
      build: async () => {
        const rollover = await pki.make(unique("rollover"), {
          subject: "/O=hsmkit test/CN=Profile Intermediate",
          issuer: inter,
          ext: [...without("authorityKeyIdentifier", CA_EXT), "authorityKeyIdentifier=none"],
        });
        return leaf(LEAF_EXT, { issuer: rollover });
      },
      code: "profile",
      reason:
        /'O=hsmkit test, CN=Profile Intermediate' has no authorityKeyIdentifier \(required on every certificate that is not self-signed\)/,
    },
    {
      rule: "critical authorityKeyIdentifier",
      opensslRefuses: true,
      build: () =>
        leaf([...without("authorityKeyIdentifier"), "authorityKeyIdentifier=critical,keyid:always"]),
      code: "profile",
      reason: /marks authorityKeyIdentifier critical/,
    },
    {
      rule: "a CA without subjectKeyIdentifier",
      opensslRefuses: true,
      build: () =>
        underCa(
          [...without("subjectKeyIdentifier", CA_EXT), "subjectKeyIdentifier=none"],
          // OpenSSL cannot derive a key id from an issuer without one; any id will do.
          [...without("authorityKeyIdentifier"), "2.5.29.35=DER:30:06:80:04:01:02:03:04"],
        ),
      code: "profile",
      reason: /certificate 'CN=Sub CA' is a CA certificate without subjectKeyIdentifier/,
    },
    {
      rule: "a CA whose basicConstraints is not critical",
      opensslRefuses: true,
      build: () => underCa([...without("basicConstraints", CA_EXT), "basicConstraints=CA:TRUE"]),
      code: "profile",
      reason: /'CN=Sub CA' is a CA certificate whose basicConstraints is not critical/,
    },
    {
      rule: "malformed authorityInfoAccess",
      build: () => leaf([...LEAF_EXT, "1.3.6.1.5.5.7.1.1=DER:30:00"]),
      code: "profile",
      reason: /'CN=leaf\.example\.com' has a malformed authorityInfoAccess \(authorityInfoAccess: empty\)/,
    },
    {
      rule: "nameConstraints not critical",
      build: () => underCa([...CA_EXT, "nameConstraints=permitted;DNS:example.com"]),
      code: "profile",
      reason: /'CN=Sub CA' has nameConstraints not marked critical/,
    },
    {
      rule: "nameConstraints in an end-entity certificate",
      build: () => leaf([...LEAF_EXT, "nameConstraints=critical,permitted;DNS:example.com"]),
      code: "profile",
      reason: /'CN=leaf\.example\.com' is an end-entity certificate with nameConstraints/,
    },
    {
      rule: "a DNS SAN that is not a host name under DNS name constraints",
      build: () =>
        underCa(
          [...CA_EXT, "nameConstraints=critical,permitted;DNS:example.com"],
          serverExt("DNS:bad name.example.com"),
        ),
      code: "name-constraints",
      reason: /DNS:bad name\.example\.com is not a valid host name, so DNS name constraints cannot apply/,
    },
    {
      rule: "CA:TRUE in a leaf (web profile)",
      build: () => leaf([...without("basicConstraints"), "basicConstraints=critical,CA:TRUE"]),
      webOnly: true,
      code: "profile",
      reason:
        /'CN=leaf\.example\.com' is a CA certificate \(basicConstraints cA=TRUE\) used as an end-entity/,
    },
    {
      rule: "keyCertSign in a leaf (web profile)",
      opensslRefuses: true,
      build: () => leaf([...without("keyUsage"), "keyUsage=critical,digitalSignature,keyCertSign"]),
      webOnly: true,
      code: "profile",
      reason: /'CN=leaf\.example\.com' is an end-entity certificate with keyUsage keyCertSign/,
    },
    {
      rule: "a leaf without extendedKeyUsage (web profile)",
      build: () => leaf(without("extendedKeyUsage")),
      webOnly: true,
      code: "bad-purpose",
      reason:
        /'CN=leaf\.example\.com' has no extendedKeyUsage; the strict profile needs serverAuth or clientAuth \(profile "rfc5280" accepts a leaf without it\)/,
    },
    {
      rule: "a leaf with anyExtendedKeyUsage alone (web profile)",
      opensslRefuses: true,
      build: () => leaf([...without("extendedKeyUsage"), "extendedKeyUsage=anyExtendedKeyUsage"]),
      webOnly: true,
      code: "bad-purpose",
      reason:
        /its extendedKeyUsage lacks serverAuth \(anyExtendedKeyUsage is not accepted on a leaf under the strict profile/,
    },
    {
      rule: "extendedKeyUsage in a root (web profile)",
      build: () => underRoot([...CA_EXT, "extendedKeyUsage=serverAuth"]),
      webOnly: true,
      code: "profile",
      reason: /certificate 'CN=Other Root' is a root certificate with extendedKeyUsage/,
    },
    {
      rule: "a root's authorityKeyIdentifier with issuer and serial (web profile)",
      build: () =>
        underRoot([
          ...without("authorityKeyIdentifier", CA_EXT),
          "authorityKeyIdentifier=keyid:always,issuer:always",
        ]),
      webOnly: true,
      code: "profile",
      reason:
        /'CN=Other Root' is a root certificate whose authorityKeyIdentifier names an issuer and serial number/,
    },
    {
      rule: "a root's authorityKeyIdentifier differing from its subjectKeyIdentifier (web profile)",
      build: () =>
        underRoot([...without("authorityKeyIdentifier", CA_EXT), "2.5.29.35=DER:30:06:80:04:01:02:03:04"]),
      webOnly: true,
      code: "profile",
      reason:
        /'CN=Other Root' is a root certificate whose authorityKeyIdentifier differs from its subjectKeyIdentifier/,
    },
  ];

  for (const c of cases) {
    it(`${c.rule}: refused${c.webOnly ? " under strict, accepted under rfc5280" : ""}`, async () => {
      const chain = await c.build();
      if (c.opensslRefuses) {
        const untrusted = chain.intermediates;
        const extra = ["-purpose", "sslserver"];
        const openssl = await pki.opensslVerify(chain.leaf, { roots: chain.roots, untrusted, extra });
        assert.equal(openssl.ok, false, openssl.output);
      }
      const options = {
        roots: chain.roots.map((r) => r.cert),
        intermediates: chain.intermediates.map((i) => i.cert),
        host: HOST,
      };
      if (c.webOnly) {
        assertRefused(verifyChain(chain.leaf.cert, options), c.code, c.reason);
        assertOk(verifyChain(chain.leaf.cert, { ...options, profile: "rfc5280" }), [
          chain.leaf,
          ...chain.intermediates,
          ...chain.roots,
        ]);
      } else {
        for (const profile of c.profile ? [c.profile] : (["strict", "rfc5280"] as const)) {
          assertRefused(verifyChain(chain.leaf.cert, { ...options, profile }), c.code, c.reason);
        }
      }
    });
  }

  it("the well-formed chain these cases start from is accepted under both profiles", async () => {
    const chain = await leaf(LEAF_EXT);
    for (const profile of ["strict", "rfc5280"] as const) {
      const options = { roots: [root.cert], intermediates: [inter.cert], host: HOST, profile };
      assertOk(verifyChain(chain.leaf.cert, options), [chain.leaf, inter, root]);
    }
    assert.ok((await pki.opensslVerify(chain.leaf, { roots: [root], untrusted: [inter] })).ok);
  });

  it("a certificate accepted in one place of a path is judged again in another (findings are kept per place)", async () => {
    const chain = await leaf(LEAF_EXT);
    const options = { roots: [root.cert], intermediates: [inter.cert], host: HOST };
    assertOk(verifyChain(chain.leaf.cert, options), [chain.leaf, inter, root]);
    // The same parsed intermediate, now offered as a leaf: a CA certificate used as an end-entity.
    assertRefused(
      verifyChain(inter.cert, { roots: [root.cert] }),
      "profile",
      /'O=hsmkit test, CN=Profile Intermediate' is a CA certificate \(basicConstraints cA=TRUE\) used as an end-entity/,
    );
    assertOk(verifyChain(chain.leaf.cert, options), [chain.leaf, inter, root]);
  });

  it("a pathLenConstraint in a leaf is ignored", async () => {
    const chain = await leaf([
      ...without("basicConstraints"),
      "basicConstraints=critical,CA:FALSE,pathlen:0",
    ]);
    assert.equal(chain.leaf.cert.basicConstraints?.pathLen, 0);
    assertOk(verifyChain(chain.leaf.cert, { roots: [root.cert], intermediates: [inter.cert], host: HOST }), [
      chain.leaf,
      inter,
      root,
    ]);
  });

  it("a leaf whose DN lies inside a permitted directoryName subtree is accepted", async () => {
    const chain = await underCa(
      [...CA_EXT, "nameConstraints=critical,permitted;dirName:nc_dn", "[nc_dn]", "O=hsmkit test"],
      LEAF_EXT,
    );
    const inside = await pki.make(unique("dn-leaf"), {
      subject: `/O=hsmkit test/CN=${HOST}`,
      issuer: chain.intermediates[0]!,
      ext: LEAF_EXT,
    });
    assertOk(
      verifyChain(inside.cert, {
        roots: [root.cert],
        intermediates: chain.intermediates.map((i) => i.cert),
        host: HOST,
      }),
      [inside, ...chain.intermediates, root],
    );
    // And a leaf outside it is refused.
    assertRefused(
      verifyChain(chain.leaf.cert, {
        roots: [root.cert],
        intermediates: chain.intermediates.map((i) => i.cert),
      }),
      "name-constraints",
      /DirName:CN=leaf\.example\.com is outside the permitted subtrees \(DirName:O=hsmkit test\)/,
    );
  });
});
