/**
 * The DigiCert CertCentral backend (`type: digicert`; DESIGN.md §4, §5; ../shared/reference/digicert-certcentral.md).
 *
 * - issue: one `POST /order/certificate/{product}` with every field explicit. A response carrying
 *   `certificate_chain` is an issued certificate — no further request. Otherwise the order is pending.
 * - Never two orders for one process. DigiCert has no idempotency key; the workflow records the intent before
 *   `issue` and the result after it. When it hands over `priorAttempts > 0` (an earlier attempt may have reached
 *   DigiCert: crash, timeout, reset, 5xx), the order list is searched first with the most selective filters
 *   DigiCert documents — the certificate's email for client products (a user's devices share one common name, not
 *   one process), the common name for SSL products, the product, and a creation-date window that starts the day
 *   the process was recorded — then only orders created after the process was recorded are read, newest first,
 *   and matched on the process-id custom field (or the comment). An order found is followed instead of placing
 *   another.
 * - Pending orders are learnt about in bulk (status-poller.ts: one status-changes call per interval per API key,
 *   one replica at a time), which wakes the waiting process with the new status; `poll` then downloads
 *   (`pem_all`, leaf for the device, the rest as chain) or reports the rejection. In between, the workflow looks
 *   at a waiting process every `pendingRecheckInterval` (Chrome process failed? caMaxWait over?) without a
 *   DigiCert request; a process nobody woke reads its order itself every `orderFallbackInterval`.
 * - cancel withdraws an order nobody will install: `"status": "canceled"` with a note (or, for an order still
 *   waiting for approval, rejects its request).
 * - Every request passes one rate budget per API key shared by all replicas (rate-limiter.ts).
 *
 * `run` refuses this backend with the memory store (`requiresDurableStore`): a crash must not lose an order intent.
 */
import { createHash } from 'node:crypto';
import type {
  CaDependencies,
  CaServices,
  BackgroundWork,
  CertificateAuthority,
  IssueRequest,
  IssueResult,
  PendingIssuance,
  PendingRef,
  Probe,
  Revocation,
  StepContext,
  RevocationRequest,
  RevocationResult,
} from '../types.ts';
import type { CrlReason } from '../../pki/crl-reason.ts';
import { readSecret } from '../../config/secrets.ts';
import { TerminalError, describeError } from '../../errors.ts';
import { isNothingApplied } from '../../http/classify.ts';
import type { Sleep } from '../../http/abortable-sleep.ts';
import { leafAndChain } from './certificate-bundle.ts';
import {
  DigicertClient,
  FAILED_STATUSES,
  WAITING_STATUSES,
  type OrderCreated,
  type OrderInfo,
  type OrderSummary,
} from './client.ts';
import type { DigicertConfig } from './config.ts';
import { DigicertNotFoundError } from './errors.ts';
import { buildOrderBody } from './order-request.ts';
import { DIGICERT_PRODUCTS } from './products.ts';
import { DigicertRateLimiter } from './rate-limiter.ts';
import { StatusChangesPoller } from './status-poller.ts';
import { DAY_MS } from '../../time.ts';

/** Orders listed when reconciling (one list request), at most; only those created after the process are read. */
const MAX_RECONCILE_CANDIDATES = 100;
/** Clock difference tolerated between this replica and DigiCert when comparing creation times. */
const CLOCK_SKEW_MS = 10 * 60_000;
/** How long a read API key is reused before the file or variable is read again (key rotation). */
const API_KEY_REFRESH_MS = 300_000;
/** Processes whose unsent attempts this replica remembers (see DigicertCa.unsent). */
const MAX_UNSENT_TRACKED = 10_000;

/** What the ChromeOS user reads when DigiCert ended an order without a certificate. */
const FAILED_USER_MESSAGES: Readonly<Record<string, string>> = {
  rejected: 'The certificate authority rejected the certificate request.',
  canceled: 'The certificate request was canceled at the certificate authority.',
  revoked: 'The certificate was revoked by the certificate authority.',
};

/** Non-secret id of an API key (its hash prefix): names its rate bucket, poller lease and lookup keys. */
export function apiKeyId(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex').slice(0, 12);
}

export interface DigicertCaOptions {
  /** Wall clock, epoch ms. Default Date.now. */
  readonly now?: () => number;
  /** Waits (rate limiter, retries, poller); tests inject one. */
  readonly sleep?: Sleep;
}

/** RFC 5280 reasons DigiCert's revoke endpoints take (`revocation_reason`), in DigiCert's spelling. */
const DIGICERT_REVOCATION_REASONS: Partial<Record<CrlReason, string>> = {
  unspecified: 'unspecified',
  keyCompromise: 'key_compromise',
  affiliationChanged: 'affiliation_changed',
  superseded: 'superseded',
  cessationOfOperation: 'cessation_of_operation',
};

function numberOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

export class DigicertCa implements CertificateAuthority, PendingIssuance, BackgroundWork, Probe, Revocation {
  readonly type = 'digicert';
  readonly name: string;
  /** The product takes `renewal_of_order_id` (products.ts): the workflow hands over the renewed certificate. */
  readonly linksRenewals: boolean;
  readonly keyId: string;
  readonly limiter: DigicertRateLimiter;
  readonly client: DigicertClient;
  private readonly config: DigicertConfig;
  private readonly deps: CaDependencies;
  private readonly now: () => number;
  private readonly sleep: Sleep | undefined;
  private poller: StatusChangesPoller | undefined;
  /**
   * Per process, how many of its order attempts on this replica certainly never reached DigiCert (the rate budget
   * had no room, a 429 each time, connection refused). When they are all the workflow's unrecorded attempts, there
   * is nothing to search for: the order list is not asked, which matters most when the budget is tight.
   */
  private readonly unsent = new Map<string, number>();

  private constructor(
    name: string,
    config: DigicertConfig,
    deps: CaDependencies,
    apiKey: string,
    options: DigicertCaOptions,
  ) {
    this.name = name;
    this.config = config;
    this.linksRenewals = DIGICERT_PRODUCTS[config.product]?.linksRenewals === true;
    this.deps = deps;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep;
    this.keyId = apiKeyId(apiKey);
    this.limiter = new DigicertRateLimiter({
      keyId: this.keyId,
      budget: { ...config.rateLimit, maxWaitMs: config.rateLimit.maxWait },
      metrics: deps.metrics,
      now: this.now,
      ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
    });
    let key = apiKey;
    let readAt = this.now();
    this.client = new DigicertClient({
      baseUrl: config.baseUrl,
      // Re-read now and then, so a rotated Secret is picked up without a restart.
      apiKey: async () => {
        if (this.now() - readAt > API_KEY_REFRESH_MS) {
          key = await readSecret(config.apiKey, deps.baseDir, 'digicert');
          readAt = this.now();
        }
        return key;
      },
      requestTimeoutMs: config.requestTimeout,
      limiter: this.limiter,
      metrics: deps.metrics,
      log: deps.log,
      ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
    });
  }

  /**
   * Reads the API key (DeploymentFaultError `digicert` when the file or variable is missing) and builds the
   * connection. Nothing is sent until the first order.
   */
  static async open(
    name: string,
    config: DigicertConfig,
    deps: CaDependencies,
    options: DigicertCaOptions = {},
  ): Promise<DigicertCa> {
    const apiKey = await readSecret(config.apiKey, deps.baseDir, 'digicert');
    return new DigicertCa(name, config, deps, apiKey, options);
  }

  private rememberUnsent(processId: string): void {
    if (!this.unsent.has(processId) && this.unsent.size >= MAX_UNSENT_TRACKED) {
      const oldest = this.unsent.keys().next().value;
      if (oldest !== undefined) this.unsent.delete(oldest);
    }
    this.unsent.set(processId, (this.unsent.get(processId) ?? 0) + 1);
  }

  /** The lookup key of the process waiting on an order (CaServices.wake). */
  lookupKey(orderId: number): string {
    return `digicert:${this.keyId}:${orderId}`;
  }

  async issue(request: IssueRequest, ctx: StepContext): Promise<IssueResult> {
    // From the moment the POST is started, DigiCert may have the order — unless it certainly applied nothing.
    let mayHaveOrdered = false;
    try {
      if (request.priorAttempts > (this.unsent.get(request.processId) ?? 0)) {
        const earlier = await this.reconcile(request, ctx);
        if (earlier !== undefined) {
          this.unsent.delete(request.processId);
          return earlier;
        }
      }
      const body = buildOrderBody(this.config, request, this.now());
      mayHaveOrdered = true;
      const created = await this.client.placeOrder(this.config.product, body, ctx);
      this.unsent.delete(request.processId);
      ctx.log.info(
        {
          caConnection: this.name,
          orderId: created.id,
          requestId: created.requests?.[0]?.id,
          certificateId: created.certificate_id,
          issuedAtOnce: (created.certificate_chain?.length ?? 0) > 0,
          ...(body.renewal_of_order_id === undefined ? {} : { renewalOfOrderId: body.renewal_of_order_id }),
        },
        'DigiCert order placed',
      );
      return this.fromCreated(created, request);
    } catch (error) {
      // "Never throws for a CA's definitive rejection" (ca/types.ts): a refused order is a result.
      if (error instanceof TerminalError) {
        this.unsent.delete(request.processId);
        return { status: 'failed', detail: describeError(error), userMessage: error.userMessage };
      }
      if (!mayHaveOrdered || isNothingApplied(error)) this.rememberUnsent(request.processId);
      throw error;
    }
  }

  async poll(ref: PendingRef, request: IssueRequest, ctx: StepContext): Promise<IssueResult> {
    const orderId = numberOf(ref.orderId);
    if (orderId === undefined)
      throw new Error(`DigiCert pending reference without an order id: ${JSON.stringify(ref)}`);
    const seen = typeof ref.seenStatus === 'string' ? ref.seenStatus : undefined;
    const certificateId = numberOf(ref.certificateId);
    const requestId = numberOf(ref.requestId);
    const checkedAt = numberOf(ref.checkedAt) ?? 0;
    try {
      // Woken by the status poller: its hint saves the order read.
      if (seen !== undefined && FAILED_STATUSES.has(seen)) return this.failed(orderId, seen, ctx);
      if (seen === 'issued' && certificateId !== undefined)
        return await this.download(orderId, certificateId, request, ctx);
      if (
        this.poller !== undefined &&
        seen !== 'issued' &&
        this.now() - checkedAt < this.config.orderFallbackInterval
      ) {
        // A routine look (Chrome process still waiting? caMaxWait over?): the bulk poller watches the order, so
        // DigiCert is not asked; only every orderFallbackInterval is the order read directly.
        return this.pending({ orderId, ...(requestId === undefined ? {} : { requestId }), checkedAt });
      }
      const info = await this.client.orderInfo(orderId, 'poll', ctx);
      return await this.fromOrderInfo(info, request, ctx);
    } catch (error) {
      if (error instanceof TerminalError) {
        return {
          status: 'failed',
          detail: `order ${orderId}: ${describeError(error)}`,
          userMessage: error.userMessage,
        };
      }
      throw error;
    }
  }

  /**
   * `PUT /certificate/{id}/revoke` with the reason and a comment. DigiCert holds every revocation request until an
   * administrator approves it in CertCentral (the seed guide: the step cannot be skipped), so the answer is
   * `pending_approval` with the request id unless DigiCert says the request is already approved.
   */
  async revoke(request: RevocationRequest, ctx: StepContext): Promise<RevocationResult> {
    const reason = DIGICERT_REVOCATION_REASONS[request.reason];
    if (reason === undefined) {
      throw new TerminalError(`DigiCert does not accept the revocation reason ${request.reason}`, {
        reason: 'ca_rejected',
        userMessage: `DigiCert accepts these reasons only: ${Object.keys(DIGICERT_REVOCATION_REASONS).join(', ')}.`,
      });
    }
    const certificateId = numberOf(request.ref?.certificateId);
    const orderId = numberOf(request.ref?.orderId);
    if (certificateId === undefined && orderId === undefined) {
      throw new TerminalError(`no DigiCert order or certificate id is recorded for ${request.serial}`, {
        reason: 'ca_rejected',
        userMessage: 'Revoke it in CertCentral: the adapter has no DigiCert id for this certificate.',
      });
    }
    const answer = await this.client.revoke(
      certificateId === undefined ? { orderId: orderId ?? 0 } : { certificateId },
      { comments: request.comment.slice(0, 500), revocation_reason: reason },
      ctx,
    );
    ctx.log.info(
      { caConnection: this.name, serial: request.serial, requestId: answer.id, status: answer.status },
      'DigiCert revocation requested',
    );
    if (answer.status === 'approved' || answer.status === 'revoked') return { status: 'revoked' };
    return { status: 'pending_approval', ...(answer.id === undefined ? {} : { requestId: String(answer.id) }) };
  }

  async cancel(ref: PendingRef, reason: string, ctx: StepContext): Promise<void> {
    const orderId = numberOf(ref.orderId);
    if (orderId === undefined) return;
    const note = `certprov: ${reason}`.slice(0, 500);
    let info: OrderInfo;
    try {
      info = await this.client.orderInfo(orderId, 'issue', ctx);
    } catch (error) {
      if (error instanceof DigicertNotFoundError) return;
      throw error;
    }
    const log = ctx.log.child({ caConnection: this.name, orderId, status: info.status });
    switch (info.status) {
      case 'pending':
      case 'waiting_pickup':
      case 'reissue_pending':
        await this.client.cancelOrder(orderId, note, ctx);
        log.info('DigiCert order canceled');
        return;
      case 'needs_approval': {
        // Still a request awaiting an administrator: rejecting it withdraws the order.
        const requestId = numberOf(ref.requestId) ?? info.requests?.[0]?.id;
        if (requestId === undefined) await this.client.cancelOrder(orderId, note, ctx);
        else await this.client.rejectRequest(requestId, note, ctx);
        log.info('DigiCert order request rejected');
        return;
      }
      case 'issued':
        log.warn(
          'the DigiCert order was issued before it could be canceled; revoke it in CertCentral if it is unwanted',
        );
        return;
      default:
        log.info('DigiCert order already ended; nothing to cancel');
    }
  }

  async start(services: CaServices): Promise<void> {
    // One rate budget per API key across every replica (Firestore); one status poller per API key.
    this.limiter.useStore(services.store);
    this.poller = new StatusChangesPoller({
      client: this.client,
      services,
      keyId: this.keyId,
      intervalMs: this.config.statusPollInterval,
      initialWindowMs: this.config.statusPollInitialWindow,
      lookupKey: (orderId) => this.lookupKey(orderId),
      log: this.deps.log,
      now: this.now,
      ...(this.sleep === undefined ? {} : { sleep: this.sleep }),
    });
    this.poller.start();
    return Promise.resolve();
  }

  async close(): Promise<void> {
    await this.poller?.stop();
    this.poller = undefined;
  }

  /** The running status poller (tests, benchmarks). */
  get statusPoller(): StatusChangesPoller | undefined {
    return this.poller;
  }

  async probe(ctx: StepContext): Promise<string> {
    const validations = await this.client.organizationValidation(this.config.organizationId, ctx);
    const summary = validations.map((v) => `${v.type ?? '?'}: ${v.status ?? '?'}`).join(', ') || 'none listed';
    return `DigiCert ${this.config.baseUrl}: API key accepted; organization ${this.config.organizationId} validations: ${summary}`;
  }

  // --- results ----------------------------------------------------------------------------------------------

  private fromCreated(created: OrderCreated, request: IssueRequest): IssueResult {
    const chain = created.certificate_chain ?? [];
    if (chain.length > 0) {
      // Issued in the order call itself (pre-validated organization, approval skipped): nothing more to ask.
      return {
        status: 'issued',
        ...leafAndChain(
          chain.map((c) => c.pem),
          request.spkiDer,
        ),
        ref: {
          orderId: created.id,
          ...(created.certificate_id === undefined ? {} : { certificateId: created.certificate_id }),
        },
      };
    }
    return this.pending({
      orderId: created.id,
      ...(created.requests?.[0]?.id === undefined ? {} : { requestId: created.requests[0].id }),
      checkedAt: this.now(),
    });
  }

  /**
   * A pending result. The ref is always fresh: the poller's hints (seenStatus, certificateId) never outlive the
   * poll that used them. `checkedAt` is when DigiCert was last asked about the order.
   */
  private pending(ref: { orderId: number; requestId?: number; checkedAt: number }): IssueResult {
    return {
      status: 'pending',
      ref,
      // With the bulk poller running, the process only needs a routine look now and then; without it (tests,
      // tools) reading the order directly is all there is.
      retryAfterMs: this.poller === undefined ? this.config.statusPollInterval : this.config.pendingRecheckInterval,
      lookupKey: this.lookupKey(ref.orderId),
    };
  }

  private failed(orderId: number, status: string, ctx: StepContext): IssueResult {
    ctx.log.warn({ caConnection: this.name, orderId, status }, 'DigiCert order ended without a certificate');
    return {
      status: 'failed',
      detail: `DigiCert order ${orderId} is ${status}`,
      userMessage: FAILED_USER_MESSAGES[status] ?? 'The certificate authority did not issue the certificate.',
    };
  }

  private async fromOrderInfo(info: OrderInfo, request: IssueRequest, ctx: StepContext): Promise<IssueResult> {
    if (info.status === 'issued') {
      const certificateId = numberOf(info.certificate?.id);
      if (certificateId === undefined) throw new Error(`DigiCert order ${info.id} is issued without a certificate id`);
      return this.download(info.id, certificateId, request, ctx);
    }
    if (FAILED_STATUSES.has(info.status)) return this.failed(info.id, info.status, ctx);
    if (!WAITING_STATUSES.has(info.status))
      ctx.log.warn({ orderId: info.id, status: info.status }, 'unknown DigiCert order status; waiting');
    return this.pending({
      orderId: info.id,
      ...(info.requests?.[0]?.id === undefined ? {} : { requestId: info.requests[0].id }),
      checkedAt: this.now(),
    });
  }

  private async download(
    orderId: number,
    certificateId: number,
    request: IssueRequest,
    ctx: StepContext,
  ): Promise<IssueResult> {
    const pem = await this.client.downloadPemAll(certificateId, ctx);
    ctx.log.info({ caConnection: this.name, orderId, certificateId }, 'DigiCert certificate downloaded');
    return { status: 'issued', ...leafAndChain([pem], request.spkiDer), ref: { orderId, certificateId } };
  }

  // --- never two orders for one process ---------------------------------------------------------------------

  /**
   * Looks for an order an earlier attempt for this process placed. Returns its state, or undefined when there is
   * none (then it is safe to order).
   */
  private async reconcile(request: IssueRequest, ctx: StepContext): Promise<IssueResult | undefined> {
    const filters = this.reconcileFilters(request);
    if (filters === undefined) return undefined; // buildOrderBody refuses it anyway: nothing can have been ordered
    const orders = await this.client.listOrders(filters, MAX_RECONCILE_CANDIDATES, ctx);
    // Orders created before the process was recorded belong to other processes (the user's other devices):
    // they are not read, which is what keeps a search within a request or two of the budget.
    const notBefore = request.processCreatedAt === undefined ? undefined : request.processCreatedAt - CLOCK_SKEW_MS;
    const candidates = orders.filter((o) => {
      const created = o.date_created === undefined ? Number.NaN : Date.parse(o.date_created);
      return notBefore === undefined || Number.isNaN(created) || created >= notBefore;
    });
    for (const summary of candidates) {
      const info = await this.matchingOrder(summary, request, ctx);
      if (info === undefined) continue;
      ctx.log.warn(
        { caConnection: this.name, orderId: info.id, status: info.status, priorAttempts: request.priorAttempts },
        'found the DigiCert order of an earlier attempt; following it instead of ordering again',
      );
      return this.fromOrderInfo(info, request, ctx);
    }
    if (orders.length >= MAX_RECONCILE_CANDIDATES) {
      ctx.log.warn(
        { caConnection: this.name, candidates: orders.length },
        'many DigiCert orders match this certificate in the window; only the newest were checked',
      );
    }
    ctx.log.info(
      { caConnection: this.name, listed: orders.length, read: candidates.length },
      'no DigiCert order of an earlier attempt; ordering',
    );
    return undefined;
  }

  /**
   * The list filters of a search for this process's order: product, creation-date window (from the day the process
   * was recorded, else `reconcileLookback`, to today; DigiCert's `a...b` date range), and the email of a client
   * certificate or the common name of an SSL one. Undefined when the request cannot have been ordered.
   */
  private reconcileFilters(request: IssueRequest): Record<string, string> | undefined {
    const commonName = request.profile.subject.flat().find((a) => a.type === 'CN')?.value;
    if (commonName === undefined) return undefined;
    const product = DIGICERT_PRODUCTS[this.config.product];
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const now = this.now();
    const earliest = Math.max(
      now - this.config.reconcileLookback,
      (request.processCreatedAt ?? Number.NEGATIVE_INFINITY) - CLOCK_SKEW_MS,
    );
    const filters: Record<string, string> = {
      product_name_id: this.config.product,
      date_created: `${day(earliest - DAY_MS)}...${day(now + DAY_MS)}`,
    };
    const email = request.profile.subjectAltNames.find((s) => s.type === 'email')?.value;
    if (product?.kind === 'client' && email !== undefined) filters.email = email;
    else filters.common_name = commonName;
    return filters;
  }

  /** The order's full record when it belongs to this process (custom field, else the comment), else undefined. */
  private async matchingOrder(
    summary: OrderSummary,
    request: IssueRequest,
    ctx: StepContext,
  ): Promise<OrderInfo | undefined> {
    const fieldId = this.config.processIdCustomFieldId;
    const listed = summary.custom_fields?.find((f) => f.metadata_id === fieldId);
    if (listed !== undefined && listed.value !== request.processId) return undefined;
    const info = await this.client.orderInfo(summary.id, 'issue', ctx);
    const field = info.custom_fields?.find((f) => f.metadata_id === fieldId);
    if (field !== undefined) return field.value === request.processId ? info : undefined;
    const commentsNameIt =
      this.config.commentsTemplate.includes('processId') && (info.comments ?? '').includes(request.processId);
    return commentsNameIt ? info : undefined;
  }
}
