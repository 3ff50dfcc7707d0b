// gRPC over HTTP/2 from Node, to the gateway's port.
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

export function nodeTransport(baseUrl: string): Transport {
  return createGrpcTransport({ baseUrl });
}
