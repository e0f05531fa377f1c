/**
 * The protobuf messages put the contract's field numbers on the wire. Expected bytes are
 * written out by hand from the field numbers (tag = number << 3 | wire type), not produced by
 * the code under test.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeMessage, encodeMessage, ProtoDecodeError } from "../../src/kms/proto.ts";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const ascii = (s: string) => Buffer.from(s).toString("hex");

describe("KMS protobuf messages", () => {
  it("encodes SignRequest with KeyId=1, Algorithm=3, Message=4, MessageType=5", () => {
    const bytes = encodeMessage("SignRequest", {
      KeyId: "key-1",
      Algorithm: "RSA_PSS_SHA_256",
      Message: Buffer.from("hi"),
      MessageType: "RAW",
    });
    const expected = hex(
      `0a05${ascii("key-1")} 1a0f${ascii("RSA_PSS_SHA_256")} 2202${ascii("hi")} 2a03${ascii("RAW")}`,
    );
    assert.deepEqual(bytes, expected);
  });

  it("decodes VerifyRequest fields by number (Signature=3, Message=5, MessageType=6)", () => {
    const wire = hex(`0a01${ascii("k")} 1a02 abcd 2203${ascii("ALG")} 2a01 ff 3206${ascii("DIGEST")}`);
    const v = decodeMessage("VerifyRequest", wire);
    assert.equal(v.KeyId, "k");
    assert.deepEqual(v.Signature, hex("abcd"));
    assert.equal(v.Algorithm, "ALG");
    assert.deepEqual(v.Message, hex("ff"));
    assert.equal(v.MessageType, "DIGEST");
    assert.deepEqual(v.Digest, Buffer.alloc(0));
  });

  it("encodes VerifyResponse Value=2 as a varint bool and Error with StatusCode=1", () => {
    assert.deepEqual(
      encodeMessage("VerifyResponse", { KeyId: "k", Value: true }),
      hex(`0a01${ascii("k")} 1001`),
    );
    assert.deepEqual(
      encodeMessage("Error", { StatusCode: 404, ErrorCode: "E", RequestId: "r" }),
      hex(`08 9403 1201${ascii("E")} 2201${ascii("r")}`),
    );
  });

  it("keeps DecryptRequest's own order: CiphertextBlob=1, KeyId=2", () => {
    const v = decodeMessage(
      "DecryptRequest",
      hex(`0a02 0102 1201${ascii("k")} 2a0c 000000000000000000000000`),
    );
    assert.deepEqual(v.CiphertextBlob, hex("0102"));
    assert.equal(v.KeyId, "k");
    assert.equal(v.Iv.length, 12);
  });

  it("puts the Advance fields where the SDKs read them: KeyVersionId=7 / 6, NumberOfBytes=2", () => {
    assert.deepEqual(
      encodeMessage("AdvanceEncryptResponse", { KeyId: "k", KeyVersionId: "v" }),
      hex(`0a01${ascii("k")} 3a01${ascii("v")}`),
    );
    assert.deepEqual(
      encodeMessage("AdvanceDecryptResponse", { KeyId: "k", KeyVersionId: "v" }),
      hex(`0a01${ascii("k")} 3201${ascii("v")}`),
    );
    const dk = decodeMessage("AdvanceGenerateDataKeyRequest", hex(`0a01${ascii("k")} 1020 1a01 ff`));
    assert.equal(dk.NumberOfBytes, 32);
    assert.deepEqual(dk.Aad, hex("ff"));
  });

  it("numbers the key pair fields as the SDKs do (the Advance requests have no Algorithm)", () => {
    const plain = decodeMessage(
      "GenerateDataKeyPairRequest",
      hex(`0a01${ascii("k")} 1207${ascii("AES_GCM")} 1a07${ascii("EC_P256")} 2203${ascii("DER")} 2a01 aa`),
    );
    assert.deepEqual(
      [plain.Algorithm, plain.KeyPairSpec, plain.KeyFormat, plain.Aad],
      ["AES_GCM", "EC_P256", "DER", hex("aa")],
    );
    const advance = decodeMessage(
      "AdvanceGenerateDataKeyPairWithoutPlaintextRequest",
      hex(`0a01${ascii("k")} 1207${ascii("EC_P256")} 1a03${ascii("PEM")} 2201 bb`),
    );
    assert.deepEqual([advance.KeyPairSpec, advance.KeyFormat, advance.Aad], ["EC_P256", "PEM", hex("bb")]);
    assert.deepEqual(
      encodeMessage("AdvanceGenerateDataKeyPairResponse", {
        PrivateKeyPlaintext: hex("01"),
        KeyVersionId: "v",
      }),
      hex(`2201 01 4a01${ascii("v")}`),
    );
    assert.deepEqual(
      encodeMessage("GenerateDataKeyPairWithoutPlaintextResponse", {
        PrivateKeyCiphertextBlob: hex("02"),
        PublicKey: hex("03"),
      }),
      hex("2201 02 2a01 03"),
    );
  });

  it("reads GetSecretValueRequest's FetchExtendedConfig=4 and writes VersionStages=5 repeated", () => {
    const req = decodeMessage("GetSecretValueRequest", hex(`0a01${ascii("s")} 1a02${ascii("v1")} 2001`));
    assert.deepEqual(
      [req.SecretName, req.VersionStage, req.VersionId, req.FetchExtendedConfig],
      ["s", "", "v1", true],
    );
    assert.deepEqual(
      encodeMessage("GetSecretValueResponse", { SecretData: "x", VersionStages: ["A", "B"] }),
      hex(`1a01${ascii("x")} 2a01${ascii("A")} 2a01${ascii("B")}`),
    );
    assert.deepEqual(decodeMessage("GetSecretValueResponse", hex("")).VersionStages, []);
  });

  it("rejects truncated, oversized-length and garbage input with ProtoDecodeError", () => {
    const good = encodeMessage("SignRequest", { KeyId: "key-1", Message: Buffer.alloc(100, 1) });
    for (const bad of [
      good.subarray(0, good.length - 1),
      hex("0a ffffffff0f 00"), // length far past the end
      hex("0f"), // wire type 7 does not exist
      Buffer.alloc(64, 0xff),
    ]) {
      assert.throws(() => decodeMessage("SignRequest", bad), ProtoDecodeError, bad.toString("hex"));
    }
  });
});
