// A small typed client of imagegen over the code `make protos` generates into gen/ts: gRPC from Node
// (`nodeTransport`), gRPC-Web from a browser (`webTransport`), both through the platform's gateway.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import {
  CreateGenerationRequestSchema,
  GeneratorService,
  type Generation,
} from "../../../gen/ts/imagegen/generator/v1/generator_pb.js";

export type { Generation } from "../../../gen/ts/imagegen/generator/v1/generator_pb.js";
export { Code } from "@connectrpc/connect";

/** What the platform answered instead: its gRPC code (by name too) and its message. */
export class ImageGenError extends Error {
  readonly code: Code;
  readonly codeName: string;

  constructor(cause: ConnectError) {
    super(cause.rawMessage);
    this.name = "ImageGenError";
    this.code = cause.code;
    this.codeName = Code[cause.code];
  }
}

export interface CreateOptions {
  prompt?: string;
  model?: string;
  n?: number;
  width?: number;
  height?: number;
  seed?: number;
  user?: string;
  /** The model server's own request (Replicate's `input`, AUTOMATIC1111's fields...). */
  input?: Record<string, unknown>;
  /** URLs, data URIs or `upl_…` upload ids. */
  inputImages?: string[];
  /** Answer at once with the `pending` generation. */
  async?: boolean;
  /** Sent as `Idempotency-Key`; one is made when none is given, so a retried create is one create. */
  idempotencyKey?: string;
  timeoutMs?: number;
}

export interface ListOptions {
  user?: string;
  model?: string;
  status?: string;
  pageSize?: number;
}

export class ImageGen {
  private readonly client: Client<typeof GeneratorService>;

  constructor(
    transport: Transport,
    private readonly apiKey: string,
  ) {
    this.client = createClient(GeneratorService, transport);
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.apiKey}`, ...extra };
  }

  async create(options: CreateOptions): Promise<Generation> {
    const { input, idempotencyKey, timeoutMs, async: runAsync, ...fields } = options;
    const request = create(CreateGenerationRequestSchema, {
      ...fields,
      async: runAsync ?? false,
      input: input === undefined ? "" : JSON.stringify(input),
    });
    const key = idempotencyKey ?? `imagegen-ts-${crypto.randomUUID()}`;
    return call(() => this.client.createGeneration(request, { headers: this.headers({ "idempotency-key": key }), timeoutMs }));
  }

  async get(id: string): Promise<Generation> {
    return call(() => this.client.getGeneration({ id }, { headers: this.headers() }));
  }

  async cancel(id: string): Promise<Generation> {
    return call(() => this.client.cancelGeneration({ id }, { headers: this.headers() }));
  }

  /** The generation at each change (queue position, progress, status) until it finishes. */
  async *watch(id: string, previews = false): AsyncGenerator<Generation> {
    try {
      for await (const generation of this.client.watchGeneration({ id, previews }, { headers: this.headers() })) {
        yield generation;
      }
    } catch (error) {
      throw translated(error);
    }
  }

  /** Newest first, page after page to the end. */
  async *list(options: ListOptions = {}): AsyncGenerator<Generation> {
    let pageToken = "";
    do {
      const page = await call(() =>
        this.client.listGenerations({ ...options, pageSize: options.pageSize ?? 50, pageToken }, { headers: this.headers() }),
      );
      yield* page.results;
      pageToken = page.pagination?.nextPageToken ?? "";
    } while (pageToken);
  }
}

async function call<T>(send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    throw translated(error);
  }
}

function translated(error: unknown): unknown {
  return error instanceof ConnectError ? new ImageGenError(error) : error;
}
