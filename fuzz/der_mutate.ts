/**
 * Structure-aware mutation of DER (certificates, CRLs, CSRs, PKCS#12): the seed is parsed into
 * its TLV tree (looking inside OCTET STRING and BIT STRING wrappers, where X.509 extensions
 * keep their values), one node is edited, dropped, duplicated or re-tagged, and the tree is
 * re-encoded with correct lengths, so the edit reaches the parsers deep inside the structure
 * instead of failing at the first length check.
 */
import fc from "fast-check";
import { DerReader } from "../src/tls/x509/der.ts";
import { applyMutations, type Mutation, mutation } from "./mutate.ts";

/** One DER element; `children` when constructed or when it wraps DER. */
interface Node {
  tag: number;
  content: Buffer;
  children?: Node[];
  /** Bytes before wrapped DER (the unused-bits octet of a BIT STRING). */
  prefix?: Buffer;
}

function parseAll(buf: Buffer, depth: number): Node[] | undefined {
  if (depth > 32) return undefined;
  try {
    const reader = new DerReader(buf, "seed");
    const out: Node[] = [];
    while (!reader.done) out.push(parseNode(reader.read(), depth));
    return out;
  } catch {
    return undefined;
  }
}

function parseNode(el: { tag: number; content: Buffer }, depth: number): Node {
  if (el.tag & 0x20)
    return { tag: el.tag, content: el.content, children: parseAll(el.content, depth + 1) ?? [] };
  if (el.tag === 0x04 && el.content.length > 1) {
    const inner = parseAll(el.content, depth + 1);
    if (inner) return { tag: el.tag, content: el.content, children: inner };
  }
  if (el.tag === 0x03 && el.content[0] === 0 && el.content.length > 2) {
    const inner = parseAll(el.content.subarray(1), depth + 1);
    if (inner)
      return { tag: el.tag, content: el.content, children: inner, prefix: el.content.subarray(0, 1) };
  }
  return { tag: el.tag, content: el.content };
}

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function encode(nodes: readonly Node[]): Buffer {
  return Buffer.concat(
    nodes.map((n) => {
      const content = n.children
        ? Buffer.concat([n.prefix ?? Buffer.alloc(0), encode(n.children)])
        : n.content;
      return Buffer.concat([Buffer.from([n.tag]), encodeLength(content.length), content]);
    }),
  );
}

function clone(nodes: readonly Node[]): Node[] {
  return nodes.map((n) => (n.children ? { ...n, children: clone(n.children) } : { ...n }));
}

/** Every node with the list that holds it, in document order. */
function flatten(list: Node[], out: Array<{ list: Node[]; index: number }> = []) {
  list.forEach((node, index) => {
    out.push({ list, index });
    if (node.children) flatten(node.children, out);
  });
  return out;
}

/** What to do to the chosen node. */
type TreeEdit =
  | { op: "content"; edits: Mutation[] }
  | { op: "drop" }
  | { op: "duplicate" }
  | { op: "retag"; tag: number }
  | { op: "graft"; donor: number; node: number };

const treeEdit: fc.Arbitrary<TreeEdit> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("content" as const),
      edits: fc.array(mutation, { minLength: 1, maxLength: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("drop" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("duplicate" as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("retag" as const),
      tag: fc.constantFrom(
        0x01,
        0x02,
        0x03,
        0x04,
        0x05,
        0x06,
        0x0c,
        0x13,
        0x16,
        0x17,
        0x18,
        0x1e,
        0x30,
        0x31,
        0x80,
        0x82,
        0x87,
        0xa0,
        0xa3,
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("graft" as const), donor: fc.nat(), node: fc.nat() }) },
);

function applyEdit(target: { list: Node[]; index: number }, edit: TreeEdit, donors: readonly Node[][]): void {
  const node = target.list[target.index]!;
  switch (edit.op) {
    case "content":
      // Editing a wrapper's bytes drops its parsed children: the edited bytes are kept as they are.
      target.list[target.index] = { tag: node.tag, content: applyMutations(node.content, edit.edits, []) };
      return;
    case "drop":
      target.list.splice(target.index, 1);
      return;
    case "duplicate":
      target.list.splice(target.index, 0, node);
      return;
    case "retag":
      target.list[target.index] = { ...node, tag: edit.tag };
      return;
    case "graft": {
      const tree = donors[edit.donor % donors.length] ?? [];
      const all = flatten(tree);
      const pick = all[edit.node % Math.max(1, all.length)];
      if (pick) target.list[target.index] = clone([pick.list[pick.index]!])[0]!;
    }
  }
}

/**
 * Inputs made by editing one to three nodes of a DER seed and re-encoding it. Seeds that are
 * not DER are left out (give them to the byte-level mutator instead).
 */
export function derMutations(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> | undefined {
  const trees = seeds.map((s) => parseAll(s, 0)).filter((t): t is Node[] => t !== undefined && t.length > 0);
  if (trees.length === 0) return undefined;
  return fc
    .record({
      seed: fc.nat({ max: trees.length - 1 }),
      edits: fc.array(fc.record({ at: fc.nat(), edit: treeEdit }), { minLength: 1, maxLength: 3 }),
    })
    .map(({ seed, edits }) => {
      const tree = clone(trees[seed]!);
      for (const { at, edit } of edits) {
        const nodes = flatten(tree);
        if (nodes.length === 0) break;
        applyEdit(nodes[at % nodes.length]!, edit, trees);
      }
      return encode(tree);
    });
}
