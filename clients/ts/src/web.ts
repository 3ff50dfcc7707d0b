// gRPC-Web with fetch, as a browser speaks it (Node 18+ has fetch too), to the gateway's port.
import type { Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

export function webTransport(baseUrl: string): Transport {
  return createGrpcWebTransport({ baseUrl });
}
