/**
 * A configured CA connection, built once from its backend's registry entry: the CA, the fault component the backend
 * declares, and the optional abilities the CA has. The workflow reads these; it names no backend.
 */
import type { FaultComponent } from '../errors.ts';
import type {
  BackgroundWork,
  CaAbilities,
  CaBackend,
  CaDependencies,
  CertificateAuthority,
  CrlIssuer,
  PendingIssuance,
  Probe,
  Revocation,
} from './types.ts';

export interface CaConnection {
  readonly name: string;
  readonly type: string;
  readonly faultComponent: FaultComponent;
  readonly ca: CertificateAuthority;
  readonly abilities: CaAbilities;
}

function hasMethods<T>(ca: object, ...names: (keyof T & string)[]): boolean {
  const present = names.filter((n) => typeof (ca as Record<string, unknown>)[n] === 'function');
  if (present.length !== 0 && present.length !== names.length) {
    throw new Error(`CA has ${present.join(', ')} but not ${names.filter((n) => !present.includes(n)).join(', ')}`);
  }
  return present.length === names.length;
}

/**
 * The optional abilities a CA implements, each bound to it. An ability is all or nothing: a CA with `poll` but no
 * `cancel` (or `start` without `close`) breaks the contract and is refused here, once, at construction.
 */
export function abilitiesOf(ca: CertificateAuthority): CaAbilities {
  const c = ca as CertificateAuthority & Partial<PendingIssuance & BackgroundWork & Probe & Revocation & CrlIssuer>;
  return {
    ...(hasMethods<PendingIssuance>(ca, 'poll', 'cancel')
      ? { pending: { poll: c.poll!.bind(ca), cancel: c.cancel!.bind(ca) } }
      : {}),
    ...(hasMethods<BackgroundWork>(ca, 'start', 'close')
      ? { background: { start: c.start!.bind(ca), close: c.close!.bind(ca) } }
      : {}),
    ...(hasMethods<Probe>(ca, 'probe') ? { probe: { probe: c.probe!.bind(ca) } } : {}),
    ...(hasMethods<Revocation>(ca, 'revoke') ? { revocation: { revoke: c.revoke!.bind(ca) } } : {}),
    ...(hasMethods<CrlIssuer>(ca, 'crlIssuer', 'crlSettings')
      ? { crlIssuer: { crlIssuer: c.crlIssuer!.bind(ca), crlSettings: c.crlSettings!.bind(ca) } }
      : {}),
  };
}

/** The connection of a CA its backend built: what the backend declares, and the CA's abilities. */
export function connectionOf<Config extends { type: string }>(
  backend: CaBackend<Config>,
  ca: CertificateAuthority,
): CaConnection {
  return { name: ca.name, type: backend.type, faultComponent: backend.faultComponent, ca, abilities: abilitiesOf(ca) };
}

/** Builds the connection `name` through its backend's registry entry. */
export async function connectCa<Config extends { type: string }>(
  backend: CaBackend<Config>,
  name: string,
  settings: Config,
  deps: CaDependencies,
): Promise<CaConnection> {
  return connectionOf(backend, await backend.create(name, settings, deps));
}
