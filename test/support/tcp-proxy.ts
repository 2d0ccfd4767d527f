/**
 * A loopback TCP proxy in front of an emulator, for faults the emulators cannot produce themselves (DESIGN.md §7):
 * `freeze()` stops forwarding in both directions while keeping every connection open (a hung peer: requests are
 * sent and never answered), `thaw()` resumes, `cut()` resets every connection. It forwards bytes only, so it works
 * for gRPC (Pub/Sub, Firestore) and HTTP alike.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** `127.0.0.1:PORT` to give a client instead of the target. */
  readonly host: string;
  readonly port: number;
  /** Stop forwarding (both directions, existing and new connections); connections stay open. */
  freeze(): void;
  /** Resume forwarding, including what was buffered while frozen. */
  thaw(): void;
  /** Reset every open connection. New connections are still accepted. */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const [targetHost, targetPortText] = target.split(':');
  const targetPort = Number(targetPortText);
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;

  const server: Server = createServer((client) => {
    const upstream = connect({ host: targetHost, port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    if (frozen) {
      // Connected while frozen: forward nothing until thaw() pipes it (piping here as well would make thaw() pipe
      // it a second time and duplicate every byte).
      client.pause();
      upstream.pause();
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp proxy: no address');

  const eachSocket = (fn: (socket: Socket) => void) => {
    for (const [client, upstream] of pairs) {
      fn(client);
      fn(upstream);
    }
  };
  return {
    host: `127.0.0.1:${address.port}`,
    port: address.port,
    freeze() {
      frozen = true;
      // pause() stops reading; with pipe() nothing more is written to the other side either.
      eachSocket((s) => {
        s.unpipe();
        s.pause();
      });
    },
    thaw() {
      frozen = false;
      for (const [client, upstream] of pairs) {
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
        upstream.resume();
      }
    },
    cut() {
      eachSocket((s) => s.resetAndDestroy());
    },
    close: () =>
      new Promise<void>((resolve) => {
        eachSocket((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
}
