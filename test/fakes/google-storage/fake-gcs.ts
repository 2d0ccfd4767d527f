/**
 * A loopback fake of the Cloud Storage JSON API's simple upload endpoint, as `@google-cloud/storage` calls it for
 * `file.save(…, { resumable: false })`: `POST /upload/storage/v1/b/<bucket>/o?uploadType=multipart&name=<object>`
 * with a `multipart/related` body (the object's JSON metadata, then the media). It rejects what Cloud Storage rejects
 * (cloud.google.com/storage/docs/json_api/v1/status-codes):
 *
 * - no or an unknown `Authorization: Bearer` token → 401;
 * - a token not granted on the bucket (no roles/storage.objectCreator) → 403;
 * - a bucket that does not exist → 404;
 * - another method or path, a missing or other `uploadType`, no `name`, a body that is not multipart/related with
 *   a JSON part and a media part → 400.
 *
 * Answers the object resource with `md5Hash` and `size`, as the client validates the upload against them.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StoredObject {
  readonly bytes: Buffer;
  readonly contentType: string | undefined;
  readonly cacheControl: string | undefined;
  readonly generation: number;
}

export class FakeGcs {
  readonly #server: http.Server;
  /** bucket → the tokens granted object creation on it. */
  readonly #buckets = new Map<string, Set<string>>();
  readonly #tokens = new Set<string>();
  readonly objects = new Map<string, StoredObject>();
  /** Every request as `METHOD path → status`. */
  readonly requests: string[] = [];
  #generation = 1;

  private constructor() {
    this.#server = http.createServer((req, res) => void this.#serve(req, res));
  }

  static async start(): Promise<FakeGcs> {
    const fake = new FakeGcs();
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** `http://127.0.0.1:PORT`, the client's `apiEndpoint`. */
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** A token the fake accepts (a valid access token). */
  acceptToken(token: string): void {
    this.#tokens.add(token);
  }

  /** Creates `bucket`, granting object creation to `granted` tokens. */
  createBucket(bucket: string, granted: readonly string[] = []): void {
    this.#buckets.set(bucket, new Set(granted));
  }

  grant(bucket: string, token: string): void {
    this.#buckets.get(bucket)?.add(token);
  }

  object(bucket: string, name: string): StoredObject | undefined {
    return this.objects.get(`${bucket}/${name}`);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const send = (status: number, body: unknown) => {
      this.requests.push(`${method} ${url.pathname} → ${status}`);
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify(body));
    };
    const fail = (status: number, reason: string, message: string) =>
      send(status, { error: { code: status, message, errors: [{ message, domain: 'global', reason }] } });

    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (auth === undefined || !this.#tokens.has(auth)) {
      return fail(401, 'required', 'Anonymous caller does not have storage.objects.create access.');
    }
    const path = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname);
    const uploadType = url.searchParams.get('uploadType');
    if (method !== 'POST' || path === null || uploadType !== 'multipart') {
      return fail(
        400,
        'invalid',
        'Upload requests must include an uploadType URL parameter and a URL path beginning with /upload/',
      );
    }
    const bucket = decodeURIComponent(path[1]!);
    const granted = this.#buckets.get(bucket);
    if (granted === undefined) return fail(404, 'notFound', 'The specified bucket does not exist.');
    if (!granted.has(auth)) {
      return fail(403, 'forbidden', `caller does not have storage.objects.create access to the bucket ${bucket}.`);
    }
    const name = url.searchParams.get('name');
    const parts = multipartParts(req.headers['content-type'], Buffer.concat(chunks));
    if (name === null || name === '' || parts === undefined || parts.length !== 2) {
      return fail(400, 'invalid', 'Multipart upload needs a name, a JSON metadata part and a media part.');
    }
    let metadata: { contentType?: string; cacheControl?: string };
    try {
      metadata = JSON.parse(parts[0]!.body.toString('utf8')) as typeof metadata;
    } catch {
      return fail(400, 'parseError', 'Parse Error');
    }
    const bytes = parts[1]!.body;
    const stored: StoredObject = {
      bytes,
      contentType: metadata.contentType ?? parts[1]!.contentType,
      cacheControl: metadata.cacheControl,
      generation: (this.#generation += 1),
    };
    this.objects.set(`${bucket}/${name}`, stored);
    return send(200, {
      kind: 'storage#object',
      id: `${bucket}/${name}/${stored.generation}`,
      name,
      bucket,
      generation: String(stored.generation),
      contentType: stored.contentType,
      cacheControl: stored.cacheControl,
      size: String(bytes.length),
      md5Hash: createHash('md5').update(bytes).digest('base64'),
    });
  }
}

/** The parts of a `multipart/related` body, or undefined when it is not one. */
function multipartParts(
  contentType: string | undefined,
  body: Buffer,
): { contentType: string | undefined; body: Buffer }[] | undefined {
  const boundary = /^multipart\/related;\s*boundary="?([^";]+)"?/i.exec(contentType ?? '')?.[1];
  if (boundary === undefined) return undefined;
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: { contentType: string | undefined; body: Buffer }[] = [];
  let at = body.indexOf(delimiter);
  if (at < 0) return undefined;
  for (;;) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') return parts;
    const next = body.indexOf(delimiter, start);
    if (next < 0) return undefined;
    const part = body.subarray(start + 2, next - 2); // after CRLF, before CRLF
    const split = part.indexOf('\r\n\r\n');
    if (split < 0) return undefined;
    const headers = part.subarray(0, split).toString('utf8');
    parts.push({
      contentType: /^content-type:\s*(.+)$/im.exec(headers)?.[1]?.trim(),
      body: part.subarray(split + 4),
    });
    at = next;
  }
}
