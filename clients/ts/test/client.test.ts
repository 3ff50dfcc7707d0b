// Run by tests/test_ts_client.py against a running platform: IMAGEGEN_URL and IMAGEGEN_API_KEY.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ImageGen, ImageGenError, Code } from "../src/index.js";
import { nodeTransport } from "../src/node.js";
import { webTransport } from "../src/web.js";

const url = process.env.IMAGEGEN_URL ?? "";
const key = process.env.IMAGEGEN_API_KEY ?? "";

for (const [name, transport] of [
  ["grpc", nodeTransport(url)],
  ["grpc-web", webTransport(url)],
] as const) {
  test(`${name}: create, watch, get, list with paging`, async () => {
    const client = new ImageGen(transport, key);
    const user = `ts-${name}-${Date.now()}`;
    const done = await client.create({ prompt: "a lighthouse", width: 64, height: 64, n: 2, seed: 7, user, input: { quality: "hd" } });
    assert.equal(done.status, "completed");
    assert.equal(done.outputImages.length, 2);
    assert.deepEqual(JSON.parse(done.input), { quality: "hd", prompt: "a lighthouse", width: 64, height: 64, seed: 7 });
    const pending = await client.create({ prompt: "a harbour", width: 64, height: 64, user, async: true });
    const statuses: string[] = [];
    for await (const event of client.watch(pending.id)) statuses.push(event.status);
    assert.equal(statuses.at(-1), "completed");
    assert.equal((await client.get(pending.id)).status, "completed");
    const seen: string[] = [];
    for await (const generation of client.list({ user, pageSize: 1 })) seen.push(generation.id);
    assert.deepEqual(seen, [pending.id, done.id]);
  });

  test(`${name}: a refusal is a typed error`, async () => {
    const client = new ImageGen(transport, key);
    await assert.rejects(client.create({ prompt: "x", model: "no-such-model" }), (error: unknown) => {
      assert.ok(error instanceof ImageGenError);
      assert.equal(error.code, Code.NotFound);
      assert.match(error.message, /no-such-model/);
      return true;
    });
    await assert.rejects(new ImageGen(transport, "sk_wrong").get("img_x"), (error: unknown) => {
      assert.ok(error instanceof ImageGenError && error.code === Code.Unauthenticated);
      return true;
    });
  });
}
