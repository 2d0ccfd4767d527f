/**
 * What a PromQL expression in deploy/ refers to — metric names, label matchers, grouping labels — checked against
 * the adapter's real metric registry, so an alert or a dashboard panel cannot name a metric or a label the code
 * does not export. A small lexer, not a full PromQL parser: enough for the expressions we write (selectors,
 * aggregations with by/without, on/ignoring, range vectors, functions, numbers).
 */
import { Metrics } from '../../src/observability/metrics.ts';

/** Functions, aggregations and keywords: identifiers that are not metric names. */
const PROMQL_WORDS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'count_values',
  'group',
  'rate',
  'irate',
  'increase',
  'delta',
  'idelta',
  'deriv',
  'predict_linear',
  'resets',
  'changes',
  'histogram_quantile',
  'min_over_time',
  'max_over_time',
  'avg_over_time',
  'sum_over_time',
  'count_over_time',
  'last_over_time',
  'quantile_over_time',
  'absent',
  'absent_over_time',
  'clamp',
  'clamp_min',
  'clamp_max',
  'abs',
  'ceil',
  'floor',
  'round',
  'scalar',
  'vector',
  'time',
  'timestamp',
  'label_replace',
  'label_join',
  'sort',
  'sort_desc',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'label_values',
  'inf',
  'nan',
]);

/** Labels Prometheus / Google Managed Prometheus attach to every scraped series (target labels). */
export const TARGET_LABELS: ReadonlySet<string> = new Set([
  'namespace',
  'pod',
  'job',
  'instance',
  'container',
  'cluster',
  'location',
  'project_id',
]);

/**
 * Metrics that do not come from the adapter: the Pub/Sub backlog from Cloud Monitoring (its PromQL name under
 * Google Managed Prometheus) and the same metric as stackdriver_exporter names it; with their labels.
 */
export const EXTERNAL_METRICS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  [
    'pubsub_googleapis_com:subscription_num_undelivered_messages',
    new Set(['subscription_id', 'project_id', 'unit', 'monitored_resource']),
  ],
  [
    'stackdriver_pubsub_subscription_pubsub_googleapis_com_subscription_num_undelivered_messages',
    new Set(['subscription_id', 'project_id', 'unit']),
  ],
]);

export interface Matcher {
  /** The metric the braces follow, or undefined for a bare `{…}`. */
  readonly metric: string | undefined;
  readonly label: string;
  readonly op: string;
  readonly value: string;
}

export interface ExpressionReferences {
  readonly metrics: readonly string[];
  readonly matchers: readonly Matcher[];
  readonly groupingLabels: readonly string[];
}

/** Metric names, label matchers and grouping labels of one expression. */
export function referencesOf(expr: string): ExpressionReferences {
  const matchers: Matcher[] = [];
  const groupingLabels: string[] = [];
  let rest = expr;
  // Selectors with braces: `name{a="b", c=~"d"}` or `{…}`.
  rest = rest.replace(
    /([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}/g,
    (_all, metric: string | undefined, body: string) => {
      for (const m of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
        matchers.push({ metric, label: m[1] as string, op: m[2] as string, value: m[3] as string });
      }
      return ` ${metric ?? ''} `;
    },
  );
  // Grouping and matching label lists.
  rest = rest.replace(
    /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_all, _kw: string, list: string) => {
      groupingLabels.push(
        ...list
          .split(',')
          .map((l) => l.trim())
          .filter((l) => l !== ''),
      );
      return ' ';
    },
  );
  rest = rest.replace(/\[[^\]]*\]/g, ' ').replace(/"(?:[^"\\]|\\.)*"/g, ' ');
  const metrics = new Set<string>(matchers.map((m) => m.metric).filter((m): m is string => m !== undefined));
  for (const m of rest.matchAll(/(?<![0-9.])\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b/g)) {
    const word = m[1] as string;
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    if (/^\d/.test(word)) continue;
    metrics.add(word);
  }
  return { metrics: [...metrics], matchers, groupingLabels };
}

interface RegisteredMetric {
  readonly name: string;
  readonly type: string;
  readonly labelNames?: readonly string[];
}

/** Every series name the adapter exports (histograms as _bucket/_sum/_count) with the labels it may carry. */
export function exportedSeries(): ReadonlyMap<string, ReadonlySet<string>> {
  const series = new Map<string, ReadonlySet<string>>();
  for (const metric of new Metrics().registry.getMetricsAsArray() as unknown as RegisteredMetric[]) {
    const labels = new Set(metric.labelNames ?? []);
    if (metric.type === 'histogram') {
      series.set(`${metric.name}_bucket`, new Set([...labels, 'le']));
      series.set(`${metric.name}_sum`, labels);
      series.set(`${metric.name}_count`, labels);
    } else {
      series.set(metric.name, labels);
    }
  }
  return series;
}

/**
 * Problems with an expression: metric names neither exported by the adapter nor in {@link EXTERNAL_METRICS} (or
 * produced by a recording rule in `recorded`), and labels none of its metrics carries. Empty when it is sound.
 */
export function referenceProblems(expr: string, recorded: ReadonlySet<string> = new Set()): string[] {
  const exported = exportedSeries();
  const refs = referencesOf(expr);
  const problems: string[] = [];
  const labelsOf = (metric: string): ReadonlySet<string> | undefined =>
    exported.get(metric) ?? EXTERNAL_METRICS.get(metric);
  for (const metric of refs.metrics) {
    if (labelsOf(metric) === undefined && !recorded.has(metric)) problems.push(`unknown metric ${metric}`);
  }
  const known = (label: string, metric: string | undefined): boolean => {
    if (TARGET_LABELS.has(label) || label === '__name__') return true;
    const candidates = metric === undefined ? refs.metrics : [metric];
    return candidates.some((m) => labelsOf(m)?.has(label) === true);
  };
  for (const m of refs.matchers) {
    if (!known(m.label, m.metric))
      problems.push(`label ${m.label} is not a label of ${m.metric ?? refs.metrics.join(', ')}`);
  }
  for (const label of refs.groupingLabels) {
    if (!known(label, undefined)) problems.push(`grouping label ${label} is not a label of ${refs.metrics.join(', ')}`);
  }
  return problems;
}
