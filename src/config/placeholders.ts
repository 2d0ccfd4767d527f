/**
 * Values copied from an example and never replaced — `PROJECT_ID`, `REGION`, an all-zero (or one-digit) tenant id,
 * the examples' organization ids — are refused by `check-config` and `run`, each naming the field to edit. They
 * would otherwise pass validation and fail later, far from the cause (a subscription that "does not exist", an
 * Entra tenant that "is not found", an order for someone else's organization).
 */
import type { Config } from './load.ts';

/** Words the examples and manifests use for values the admin must fill in (CA_POOL: the google-cas overlay's pool). */
const PLACEHOLDER_WORDS = ['PROJECT_ID', 'PROJECT_NUMBER', 'REGION', 'CA_POOL'] as const;

/** A GUID made of one repeated hex digit: `00000000-0000-0000-0000-000000000000`, `11111111-…`. */
const REPEATED_GUID = /^([0-9a-f])\1{7}-\1{4}-\1{4}-\1{4}-\1{12}$/i;

/** The organization ids of config/digicert.example.yaml and deploy/overlays/digicert/config.yaml. */
export const EXAMPLE_ORGANIZATION_IDS: ReadonlySet<number> = new Set([112233, 123456]);

function* leaves(value: unknown, at: string): Generator<[string, unknown]> {
  if (value instanceof Map) {
    for (const [key, child] of value) yield* leaves(child, `${at}.${String(key)}`);
  } else if (Array.isArray(value)) {
    for (const [i, child] of value.entries()) yield* leaves(child, `${at}[${i}]`);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) yield* leaves(child, at === '' ? key : `${at}.${key}`);
  } else {
    yield [at, value];
  }
}

function problemOf(field: string, value: unknown): string | undefined {
  if (typeof value === 'string') {
    const word = PLACEHOLDER_WORDS.find((w) => new RegExp(`(^|[^A-Za-z0-9])${w}([^A-Za-z0-9]|$)`).test(value));
    if (word !== undefined) {
      return `${field}: "${value}" still holds the placeholder ${word}: write your own value there`;
    }
    if (REPEATED_GUID.test(value)) {
      return `${field}: ${value} is the example's placeholder id: write the real one (Azure portal → Microsoft Entra ID)`;
    }
  }
  if (typeof value === 'number' && field.endsWith('.organizationId') && EXAMPLE_ORGANIZATION_IDS.has(value)) {
    return `${field}: ${value} is the example's organization id: write your validated organization's id (CertCentral → Organizations)`;
  }
  return undefined;
}

/** The subscription's project came from GOOGLE_CLOUD_PROJECT: the place to edit is the variable (settings.env). */
function projectVariableProblem(subscription: unknown): string | undefined {
  const project = typeof subscription === 'string' ? subscription.split('/')[1] : undefined;
  if (project === undefined || problemOf('', project) === undefined) return undefined;
  return `pubsub.subscription: GOOGLE_CLOUD_PROJECT is "${project}", a placeholder: write your project id as PROJECT_ID in the overlay's settings.env (or set the variable)`;
}

/** One problem per placeholder left in the parts of the configuration that name remote resources. */
export function placeholderProblems(config: Config): string[] {
  const problems: string[] = [];
  const sections: Record<string, unknown> = {
    // A derived id repeats the subscription's placeholder: one problem, at the subscription, is enough.
    ...(config.instanceIdSource === 'configured' ? { instanceId: config.instanceId } : {}),
    chrome: config.chrome,
    pubsub: config.pubsub,
    store: config.store,
  };
  for (const [field, value] of leaves(sections, '')) {
    const problem =
      field === 'pubsub.subscription' && config.pubsub.projectFromEnvironment
        ? projectVariableProblem(value)
        : problemOf(field, value);
    if (problem !== undefined) problems.push(problem);
  }
  for (const connection of config.caConnections.values()) {
    for (const [field, value] of leaves(connection.settings, `caConnections.${connection.name}`)) {
      const problem = problemOf(field, value);
      if (problem !== undefined) problems.push(problem);
    }
  }
  return problems;
}
