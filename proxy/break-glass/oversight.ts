import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Decision, DecisionContext } from '../../policy/decision.ts';
import type { ScoreResult } from '../../scorer/types.ts';
import { wantsHtml } from '../enforce/responses.ts';
import type { Principal } from '../identity/principal.ts';
import { assertReturnTo } from '../identity/return-to.ts';
import type { PatientPaths } from '../../scorer/features/patient-paths.ts';
import { PatientTargetPseudonymizer } from '../patient-target.ts';
import type { PreparedRequest } from '../pipeline/prepare.ts';
import type { AuditPort, AuthResult, IdentityPort, PolicyPort } from '../ports.ts';
import { patternOf, pseudonymizePath, type ReviewEntry } from '../review/entry.ts';
import type { BenignPatterns, ReviewQueue } from '../review/queue.ts';
import type { KeyValueStore } from '../state/key-value-store.ts';
import { handleOversightRoute } from './claims.ts';
import type { OversightConfig } from './config.ts';
import { BREAK_GLASS_PATH, NOTICE_PATH, sendBreakGlassPage, sendNoticePage } from './pages.ts';
import { noticeKey, OversightStore, randomToken, sha256, type OfferRecord } from './store.ts';

/** Response header that carries the notice text to API clients on a `notify` decision. */
export const NOTICE_HEADER = 'wardgate-notice';

/** Maximum delay of setTimeout: a longer delay fires at once, so long grants are checked in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface OversightOptions {
  readonly store: KeyValueStore;
  readonly config: OversightConfig;
  /** Key of the patient pseudonyms in review and audit entries (the scorer's key). */
  readonly patientKey: Uint8Array;
  /** The compiled `scorer.patient_paths`, so that ids in configured page paths are pseudonymized too. */
  readonly patientPaths?: PatientPaths;
  /** Absent when Wardgate runs on the in-process store; nothing is queued then. */
  readonly review?: ReviewQueue;
  readonly benign?: BenignPatterns;
  readonly audit?: AuditPort;
  readonly identity: Pick<IdentityPort, 'sendStepUp'>;
  readonly now: () => number;
  readonly logger: Logger;
}

/** Facts the oversight layer adds to the decision context. */
export interface OversightFacts {
  readonly breakGlassActive: boolean;
  readonly reviewedBenign: boolean;
}

/** A decision after grants and benign labels are applied, with what changed it. */
export interface OversightOutcome {
  readonly decision: Decision;
  /** `break_glass`: allowed under an active emergency access; `reviewed_benign`: a risk-driven step-up waived by a benign label. */
  readonly override?: 'break_glass' | 'reviewed_benign';
  readonly reviewedBenign: boolean;
}

export interface EnforceInput {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly prepared: PreparedRequest & { ok: true };
  readonly principal: Principal | null;
  readonly outcome: OversightOutcome;
  readonly result: ScoreResult | null;
  readonly incidentId: string;
  readonly span: Span;
  readonly now: number;
}

/** The parts of {@link EnforceInput} that a review entry needs. */
export type ReviewInput = Pick<EnforceInput, 'req' | 'prepared' | 'principal' | 'outcome' | 'result' | 'incidentId' | 'now'>;

/**
 * Break-glass, notices and the review queue in the request pipeline. The pipeline calls
 * {@link breakGlassActive} before the policy decides, {@link reviewedBenign} and {@link adjust}
 * after, {@link handleRoute} for the claim and acknowledgement endpoints, and {@link enforce}
 * before its own enforcement.
 */
export class Oversight {
  readonly options: OversightOptions;
  readonly store: OversightStore;
  readonly pseudonymizer: PatientTargetPseudonymizer;

  constructor(options: OversightOptions) {
    this.options = options;
    this.store = new OversightStore(options.store);
    this.pseudonymizer = new PatientTargetPseudonymizer(options.patientKey, options.patientPaths);
  }

  /** Number of review entries lost to Redis failures since start-up. */
  get reviewFailures(): number {
    return this.options.review?.failures ?? 0;
  }

  /** Number of decision entries not queued since start-up because their user reached the hourly limit. */
  get reviewLimitedEntries(): number {
    return this.options.review?.limitedEntries ?? 0;
  }

  /**
   * Looks up whether the caller has an emergency access on the route and whether the
   * request's pattern was labelled benign. A store failure counts as "no" (fail closed) and is
   * logged. The pipeline runs the two lookups apart ({@link breakGlassActive} and {@link reviewedBenign}).
   */
  async facts(principal: Principal | null, routeId: string, result: ScoreResult | null, now: number, log: Logger): Promise<OversightFacts> {
    const [breakGlassActive, reviewedBenign] = await Promise.all([
      this.breakGlassActive(principal, routeId, now, log),
      this.reviewedBenign(principal, routeId, result, log),
    ]);
    return { breakGlassActive, reviewedBenign };
  }

  /**
   * Looks up whether the caller has an emergency access on the route. A store failure counts
   * as "no" (fail closed) and is logged. The result does not depend on the score, so the
   * pipeline starts this lookup together with scoring.
   */
  async breakGlassActive(principal: Principal | null, routeId: string, now: number, log: Logger): Promise<boolean> {
    if (!principal) return false;

    const grant = await this.store.loadGrant(principal.subject, routeId, now).catch((error: unknown) => {
      log.warn({ err: error, route: routeId }, 'break-glass grant lookup failed; treating the grant as absent');
      return null;
    });
    return grant !== null;
  }

  /**
   * Looks up whether analysts labelled the request's pattern (route and top features) benign.
   * A store failure counts as "no" (fail closed) and is logged.
   */
  async reviewedBenign(principal: Principal | null, routeId: string, result: ScoreResult | null, log: Logger): Promise<boolean> {
    if (!principal || !result || !this.options.benign) return false;

    return this.options.benign.isAccepted(principal.subject, patternOf(routeId, result.top)).catch((error: unknown) => {
      log.warn({ err: error, route: routeId }, 'benign pattern lookup failed; treating the pattern as not reviewed');
      return false;
    });
  }

  /**
   * Returns whether a benign label can change what happens to `decision`: {@link adjust} waives
   * only a step-up, and the review queue skips a benign pattern only when its risk reaches the
   * review threshold. The policy itself never reads the label, so other decisions need no lookup.
   */
  needsBenignLabel(decision: Decision): boolean {
    return decision.action === 'step_up' || decision.risk >= this.options.config.review.threshold;
  }

  /**
   * Applies an active emergency access, which turns a decision that offers break-glass into
   * allow. Then applies a benign label: a step-up becomes the decision the policy makes for
   * the same request at risk 0 when that is allow or notify, so only risk-driven step-ups are waived.
   */
  adjust(decision: Decision, context: DecisionContext & { reviewedBenign?: boolean }, policy: PolicyPort): OversightOutcome {
    const reviewedBenign = context.reviewedBenign === true;
    const offersBreakGlass = decision.breakGlass !== undefined && (decision.action === 'break_glass' || decision.action === 'step_up');
    if (offersBreakGlass && context.breakGlassActive === true) {
      return { decision: { ...decision, action: 'allow', reasons: [...decision.reasons, 'emergency access (break-glass) is active for this user and route'] }, override: 'break_glass', reviewedBenign };
    }

    if (reviewedBenign && decision.action === 'step_up') {
      const withoutRisk = policy.decide({ ...context, risk: 0 });
      if (withoutRisk.action === 'allow' || withoutRisk.action === 'notify') {
        const reason = `step-up by rule ${decision.rule} waived because analysts labelled this pattern benign`;
        return { decision: { ...withoutRisk, risk: decision.risk, reasons: [...withoutRisk.reasons, reason] }, override: 'reviewed_benign', reviewedBenign };
      }
    }
    return { decision, reviewedBenign };
  }

  /** Serves `/.wardgate/break-glass` and `/.wardgate/notice`; returns false for any other path. */
  async handleRoute(req: IncomingMessage, res: ServerResponse, prepared: PreparedRequest & { ok: true }, auth: AuthResult, incidentId: string, log: Logger): Promise<boolean> {
    const path = prepared.url.pathname;
    if (path !== BREAK_GLASS_PATH && path !== NOTICE_PATH) return false;
    await handleOversightRoute(this, { req, res, path, auth, incidentId, log, now: this.options.now() });
    return true;
  }

  /**
   * Queues the decision for review when it qualifies, records accesses under an emergency
   * access, and responds to `notify` and `break_glass` decisions. Returns null when it sent the
   * response, otherwise the decision for the pipeline to enforce (`notify` comes back as allow).
   */
  async enforce(input: EnforceInput): Promise<Decision | null> {
    const { outcome, span } = input;
    this.#flagForReview(input);
    this.#recordBreakGlassAccess(input);
    if (outcome.override === 'reviewed_benign') span.setAttribute('wardgate.reviewed_benign', true);

    if (outcome.decision.action === 'notify') return this.#enforceNotice(input);
    return this.#enforceBreakGlass(input);
  }

  async #enforceNotice(input: EnforceInput): Promise<Decision | null> {
    const { req, res, principal, span } = input;
    const decision = input.outcome.decision;
    span.setAttribute('wardgate.notice', true);
    const key = principal?.method === 'session' && principal.sessionId ? noticeKey(principal.sessionId, input.prepared.route!.id, this.#patients(input)) : null;
    try {
      if (key && isNavigation(req) && !(await this.store.acknowledged(key))) {
        const token = await this.#saveOffer(input, 'notice', { notice_key: key });
        sendNoticePage(res, { ...token, message: this.options.config.notify.message, incidentId: input.incidentId });
        return null;
      }
    } catch (error) {
      // The notice informs and blocks nothing, so without its store the header alone carries it.
      this.options.logger.warn({ err: error, trace_id: input.incidentId }, 'notice state is unavailable; forwarding with the notice header only');
    }
    res.setHeader(NOTICE_HEADER, this.options.config.notify.message);
    return { ...decision, action: 'allow' };
  }

  async #enforceBreakGlass(input: EnforceInput): Promise<Decision | null> {
    const { req, res, principal } = input;
    const decision = input.outcome.decision;
    const offer = decision.breakGlass;
    if (!offer || !principal) return decision;
    if (!Number.isSafeInteger(offer.ttl) || offer.ttl <= 0 || offer.reason_codes.length === 0) {
      // Such an offer could never be claimed, so the request is blocked as if none were offered.
      this.options.logger.error({ rule: decision.rule, ttl: offer.ttl, reason_codes: offer.reason_codes, trace_id: input.incidentId }, 'break-glass offer has no positive whole ttl or no reason codes; blocking without the offer');
      return decision.action === 'break_glass' ? { ...decision, action: 'block' } : decision;
    }
    if (decision.action === 'break_glass') {
      const token = await this.#saveOffer(input, 'break_glass', { ttl: offer.ttl, reason_codes: offer.reason_codes }).catch((error: unknown) => {
        this.options.logger.error({ err: error, trace_id: input.incidentId }, 'break-glass offer could not be stored; the request is blocked without the offer');
        return null;
      });
      if (!token) return { ...decision, action: 'block' };
      if (wantsHtml(req)) {
        sendBreakGlassPage(res, { ...token, reasonCodes: offer.reason_codes, ttlSeconds: offer.ttl, minLength: this.options.config.break_glass.justification_min_length, maxLength: this.options.config.break_glass.justification_max_length, incidentId: input.incidentId, stepUp: false });
      } else {
        sendBreakGlassRequired(res, input.incidentId, token, offer.reason_codes, offer.ttl, this.options.config.break_glass);
      }
      return null;
    }
    if (decision.action === 'step_up' && decision.stepUp && principal.method === 'session' && isNavigation(req)) {
      const token = await this.#saveOffer(input, 'break_glass', { ttl: offer.ttl, reason_codes: offer.reason_codes, step_up: decision.stepUp }).catch((error: unknown) => {
        this.options.logger.error({ err: error, trace_id: input.incidentId }, 'break-glass offer could not be stored; sending the plain step-up');
        return null;
      });
      // Without a stored offer the plain step-up still works.
      if (!token) return decision;
      sendBreakGlassPage(res, { ...token, reasonCodes: offer.reason_codes, ttlSeconds: offer.ttl, minLength: this.options.config.break_glass.justification_min_length, maxLength: this.options.config.break_glass.justification_max_length, incidentId: input.incidentId, stepUp: true });
      return null;
    }
    return decision;
  }

  /**
   * Queues a WebSocket upgrade's decision for review when it qualifies, and writes the access
   * record of an active emergency access, as {@link enforce} does for other requests. An upgrade
   * gets no notice or break-glass page, so nothing else applies.
   */
  recordUpgrade(input: ReviewInput & { span: Span }): void {
    this.#flagForReview(input);
    this.#recordBreakGlassAccess(input);
  }

  /**
   * Destroys `socket`, a WebSocket opened under an emergency access, once the caller's grant on
   * the route has expired. A grant renewed in the meantime moves the deadline. A failed lookup
   * counts as an expired grant, as it does on the request path.
   */
  closeAtGrantExpiry(principal: Principal, routeId: string, socket: Duplex, log: Logger): void {
    let timer: NodeJS.Timeout | undefined;
    const check = async (): Promise<void> => {
      const grant = await this.store.loadGrant(principal.subject, routeId, this.options.now()).catch((error: unknown) => {
        log.warn({ err: error, route: routeId }, 'break-glass grant lookup for an open WebSocket failed; closing the WebSocket');
        return null;
      });
      if (socket.destroyed) return;

      if (grant === null) {
        log.info({ user: principal.subject, route: routeId }, 'WebSocket closed because its break-glass grant expired');
        socket.destroy();
        return;
      }
      const delay = Math.min(Math.max(grant.expires_at - this.options.now(), 0) + 1, MAX_TIMER_MS);
      timer = setTimeout(() => void check(), delay);
      timer.unref();
    };
    socket.once('close', () => clearTimeout(timer));
    void check();
  }

  #recordBreakGlassAccess(input: ReviewInput & { span: Span }): void {
    if (input.outcome.override !== 'break_glass') return;
    input.span.setAttribute('wardgate.break_glass', true);
    this.options.audit?.append({ kind: 'break_glass', event: 'access', trace_id: input.incidentId, time: input.now, ...this.#requestFields(input) });
  }

  #flagForReview(input: ReviewInput): void {
    const { outcome } = input;
    const decision = outcome.decision;
    const queue = this.options.review;
    if (!queue || outcome.override === 'break_glass' || decision.rule.startsWith('fail_mode.')) return;

    const escalated = decision.action === 'step_up' || decision.action === 'block' || decision.action === 'break_glass';
    // A benign label covers the risk of this pattern, so only an escalation still flags it.
    const risky = decision.risk >= this.options.config.review.threshold && !outcome.reviewedBenign;
    if (!escalated && !risky) return;

    const entry = { kind: 'decision', time: input.now, trace_id: input.incidentId, ...this.#requestFields(input), action: decision.action, reasons: decision.reasons, risk: decision.risk, top_features: input.result?.top ?? [], ...(input.result ? { model_version: input.result.modelVersion } : {}) } as const;
    // Every entry counts towards the user's hourly limit, but only escalations below the review
    // threshold are dropped at it, so a flood of them cannot hide the user's risky requests.
    queue.enqueue(entry, { exemptFromUserLimit: risky });
  }

  #requestFields(input: ReviewInput): { user: string; groups: readonly string[]; route: string; method: string; path: string; patients: string[]; rule: string } {
    const { path, patients } = pseudonymizePath(input.prepared.url.pathname + input.prepared.url.search, this.pseudonymizer);
    return {
      user: input.principal?.subject ?? '(anonymous)',
      groups: input.principal?.groups ?? [],
      route: input.prepared.route!.id,
      method: input.req.method ?? 'GET',
      path,
      patients,
      rule: input.outcome.decision.rule,
    };
  }

  #patients(input: EnforceInput): string[] {
    return this.pseudonymizer.pseudonymizeTarget(input.prepared.url.pathname + input.prepared.url.search).patients;
  }

  async #saveOffer(input: EnforceInput, kind: OfferRecord['kind'], extra: Partial<OfferRecord>): Promise<{ offer: string; csrf: string }> {
    const principal = input.principal!;
    const offer = randomToken();
    const csrf = randomToken();
    const decision = input.outcome.decision;
    const fields = this.#requestFields(input);
    const record: OfferRecord = {
      kind,
      subject: principal.subject,
      ...(principal.sessionId ? { session: sha256(principal.sessionId) } : {}),
      csrf: sha256(csrf),
      route: fields.route,
      return_to: safeReturnTo(input.prepared.url.pathname + input.prepared.url.search),
      trace_id: input.incidentId,
      created_at: input.now,
      groups: fields.groups,
      method: fields.method,
      path: fields.path,
      patients: fields.patients,
      rule: decision.rule,
      reasons: decision.reasons,
      risk: decision.risk,
      top: input.result?.top ?? [],
      ...(input.result ? { model_version: input.result.modelVersion } : {}),
      ...extra,
    };
    await this.store.saveOffer(offer, record, this.options.config.break_glass.offer_ttl * 1000);
    return { offer, csrf };
  }
}

/** Returns whether the request is a browser navigation that can be shown an interstitial page. */
function isNavigation(req: IncomingMessage): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && wantsHtml(req);
}

function safeReturnTo(path: string): string {
  try {
    return assertReturnTo(path);
  } catch {
    return '/';
  }
}

function sendBreakGlassRequired(res: ServerResponse, incidentId: string, token: { offer: string; csrf: string }, reasonCodes: readonly string[], ttl: number, limits: OversightConfig['break_glass']): void {
  res.writeHead(403, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-wardgate-incident': incidentId });
  res.end(JSON.stringify({
    error: 'WG_BREAK_GLASS_REQUIRED',
    message: `The access policy blocks this request. To claim emergency access, POST a JSON object with offer, csrf, reason_code and a justification of ${limits.justification_min_length} to ${limits.justification_max_length} characters to ${BREAK_GLASS_PATH}.`,
    incident_id: incidentId,
    break_glass: { endpoint: BREAK_GLASS_PATH, reason_codes: reasonCodes, ttl, offer: token.offer, csrf: token.csrf, justification_min_length: limits.justification_min_length, justification_max_length: limits.justification_max_length },
  }));
}
