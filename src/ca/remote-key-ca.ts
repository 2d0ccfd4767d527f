/**
 * What the issuing CAs whose key lives elsewhere (Azure Key Vault / Managed HSM, Cloud KMS) share: the certificate is
 * built here by the issuing core and only the signature comes from the key's home, so issuing, revocation onto the
 * connection's own CRL and CRL signing are the same code; a subclass says where its material comes from (the key
 * version, the CA certificate, the signer) and how to name it in messages.
 */
import path from 'node:path';
import { DeploymentFaultError, describeError, type FaultComponent } from '../errors.ts';
import type { ParsedCertificate } from '../pki/certificate-builder.ts';
import { revocationInfoOf, type CrlSettings } from './crl-settings.ts';
import { issueLeaf, listOnOwnCrl, readChainFile } from './issuing-core.ts';
import type {
  CaDependencies,
  CrlIssuer,
  IssueRequest,
  IssueResult,
  IssuingCa,
  RevocationRequest,
  RevocationResult,
  StepContext,
} from './types.ts';

/** The issuing material of a remote-key CA: the key version signs every certificate and CRL. */
export interface RemoteKeyMaterial extends IssuingCa {
  readonly keyVersion: string;
}

/** The configuration fields the shared part reads. */
export interface RemoteKeyCaSettings {
  readonly maxValidityDays: number;
  readonly backdate: number;
  readonly chainFile?: string | undefined;
  readonly crl?: CrlSettings | undefined;
}

export abstract class RemoteKeyCa<M extends RemoteKeyMaterial> implements CrlIssuer {
  abstract readonly name: string;
  abstract readonly config: RemoteKeyCaSettings;
  /** `Key Vault CA`, `Cloud KMS CA`: how messages and logs name this kind of CA. */
  protected abstract readonly label: string;
  protected abstract readonly component: FaultComponent;
  protected abstract readonly deps: CaDependencies;

  /** The cached issuing material (loaded once, shared by concurrent callers). */
  abstract material(signal: AbortSignal): Promise<M>;
  protected abstract now(): Date;
  /** What to do when the remote signature does not verify, or the CA certificate has expired. */
  protected abstract issueHints(material: M): { readonly signatureMismatch: string; readonly expired: string };

  /** `chainFile`: the CA certificate's parents, each the issuer of the one before. */
  protected async loadChain(certificate: ParsedCertificate): Promise<string[]> {
    if (this.config.chainFile === undefined) return [];
    const file = path.resolve(this.deps.baseDir, this.config.chainFile);
    try {
      return await readChainFile(file, certificate);
    } catch (error) {
      throw new DeploymentFaultError(`chainFile ${file} cannot be used (${describeError(error)})`, {
        component: this.component,
        cause: error,
      });
    }
  }

  /** The serial goes on the connection's CRL: one remote sign per CRL, not one per serial. */
  async revoke(request: RevocationRequest, ctx: StepContext): Promise<RevocationResult> {
    return listOnOwnCrl(await this.material(ctx.signal), request, this.label);
  }

  crlSettings(): CrlSettings | undefined {
    return this.config.crl;
  }

  crlIssuer(signal: AbortSignal): Promise<IssuingCa> {
    return this.material(signal);
  }

  async issue(request: IssueRequest, ctx: StepContext): Promise<IssueResult> {
    ctx.signal.throwIfAborted();
    const material = await this.material(ctx.signal);
    return issueLeaf(request, ctx, material, {
      connection: this.name,
      label: this.label,
      component: this.component,
      maxValidityDays: this.config.maxValidityDays,
      backdateMs: this.config.backdate,
      revocationInfo: revocationInfoOf(this.config.crl),
      now: this.now(),
      hints: this.issueHints(material),
      logFields: { keyVersion: material.keyVersion },
    });
  }
}
