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
