/**
 * Validator issues → sentences an operator can act on: each names the field and says what to write instead
 * ("write { file: PATH } or { env: VARIABLE }", "did you mean profiles?"), never raw validator output such as
 * "Invalid input" or "expected object, received null".
 */
import { z } from 'zod';

type Issue = z.core.$ZodIssue;
type Schema = z.core.$ZodType;

export function formatPath(segments: readonly PropertyKey[]): string {
  return segments.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? String(s) : `.${String(s)}`)).join('');
}

interface Def {
  readonly type: string;
  readonly innerType?: Schema;
  readonly in?: Schema;
  readonly shape?: Record<string, Schema>;
  readonly valueType?: Schema;
  readonly element?: Schema;
  readonly options?: readonly Schema[];
}

const defOf = (schema: Schema): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** Strips optional/default/prefault/nullable/pipe wrappers. */
function unwrap(schema: Schema): Schema {
  let current = schema;
  for (let i = 0; i < 10; i += 1) {
    const def = defOf(current);
    const inner = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
    if (inner === undefined) return current;
    current = inner;
  }
  return current;
}

/** The schema describing the value at `path`, when it can be found. */
export function schemaAt(schema: Schema, path: readonly PropertyKey[]): Schema | undefined {
  let current: Schema | undefined = schema;
  for (const segment of path) {
    if (current === undefined) return undefined;
    const def = defOf(unwrap(current));
    if (def.type === 'object') current = def.shape?.[String(segment)];
    else if (def.type === 'record') current = def.valueType;
    else if (def.type === 'array') current = def.element;
    else if (def.type === 'union') {
      current = def.options
        ?.map((option) => schemaAt(option, [segment]))
        .find((found): found is Schema => found !== undefined);
    } else return undefined;
  }
  return current;
}

/** Keys an object schema (or a union of them) accepts. */
export function knownKeys(schema: Schema | undefined): string[] {
  if (schema === undefined) return [];
  const def = defOf(unwrap(schema));
  if (def.type === 'object') return Object.keys(def.shape ?? {});
  if (def.type === 'union') return [...new Set((def.options ?? []).flatMap((o) => knownKeys(o)))];
  return [];
}

/** The description written on a schema (or on what it wraps): "what to write" for that field. */
function descriptionOf(schema: Schema | undefined): string | undefined {
  let current = schema;
  for (let i = 0; current !== undefined && i < 10; i += 1) {
    const text = (current as unknown as { description?: string }).description;
    if (text !== undefined) return text;
    const def = defOf(current);
    current = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
  }
  return undefined;
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment): "emial" → "email" is 1. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i += 1) {
    const row = d[i] ?? [];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      row[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The candidate closest to `word` when it is plausibly a typo of it. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping of keys to values',
  string: 'a text value',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
};

function received(value: unknown): string {
  if (value === null) return 'nothing (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string')
    return `the text ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${scalarText(value)}`;
}

/** A scalar as text (objects have no useful text form). */
function scalarText(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : '';
}

/**
 * `X is not one of a, b; did you mean "b"?` A text value is echoed only when it is a typo of a known name: anything
 * else may be a secret pasted into the wrong field (an API key as `chrome.credentials`).
 */
function notOneOf(value: unknown, names: readonly string[]): string {
  const close = nearest(scalarText(value), names);
  const got = typeof value === 'string' && close === undefined ? 'a text value' : received(value);
  return `${got} is not one of ${names.join(', ')}${close === undefined ? '' : `; did you mean "${close}"?`}`;
}

/** The validator's own wording for `issue` (a schema's custom message differs from it). */
function isValidatorWording(issue: Issue): boolean {
  // The error map takes the raw issue, whose `input` is optional on the finished one.
  const own = z.config().localeError?.(issue as z.core.$ZodRawIssue);
  return issue.message === (typeof own === 'string' ? own : own?.message);
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** A size bound in words: `must be at least 1`, `must not be empty`, `must list at most 3 entries`. */
function boundText(issue: Issue): string | undefined {
  if (issue.code !== 'too_small' && issue.code !== 'too_big') return undefined;
  const small = issue.code === 'too_small';
  const bound = Number(small ? issue.minimum : issue.maximum);
  const inclusive = issue.inclusive !== false;
  switch (issue.origin) {
    case 'number':
    case 'int':
    case 'bigint':
      return small
        ? `must be ${inclusive ? 'at least' : 'more than'} ${bound}`
        : `must be ${inclusive ? 'at most' : 'less than'} ${bound}`;
    case 'string':
      if (small && bound === 1) return 'must not be empty';
      return `must be ${small ? 'at least' : 'at most'} ${plural(bound, 'character')} long`;
    case 'array':
    case 'set':
      if (small && bound === 1) return 'must list at least one entry';
      return `must list ${small ? 'at least' : 'at most'} ${bound} ${bound === 1 ? 'entry' : 'entries'}`;
    default:
      return undefined;
  }
}

function what(schema: Schema | undefined, expected: string | undefined): string {
  return descriptionOf(schema) ?? TYPE_WORDS[expected ?? ''] ?? `a value of type ${expected ?? 'unknown'}`;
}

/** `; did you mean "x"?` for a likely typo, else the list of what is known. */
export function suggestion(word: string, candidates: readonly string[]): string {
  const close = nearest(word, candidates);
  if (close !== undefined) return `; did you mean "${close}"?`;
  return candidates.length > 0 ? `; known here: ${candidates.join(', ')}` : '';
}

/** One sentence per problem, each starting with its path (below `prefix`). */
export function describeIssues(
  issues: readonly Issue[],
  schema: Schema,
  input: unknown,
  prefix: readonly PropertyKey[] = [],
): string[] {
  const problems: string[] = [];
  for (const issue of issues) {
    const path = issue.path;
    const where = formatPath([...prefix, ...path]);
    const at = (text: string) => (where === '' ? text : `${where}: ${text}`);
    const fieldSchema = schemaAt(schema, path);
    const value = valueAt(input, path);
    switch (issue.code) {
      case 'unrecognized_keys': {
        const known = knownKeys(fieldSchema);
        for (const key of issue.keys) {
          const keyWhere = formatPath([...prefix, ...path, key]);
          problems.push(`${keyWhere}: unknown key${suggestion(key, known)}`);
        }
        continue;
      }
      case 'invalid_type': {
        if (path.length === 0 && prefix.length === 0 && (value === null || value === undefined)) {
          problems.push(
            'the file is empty (or holds only comments): write at least caConnections and profiles — see config/local.example.yaml',
          );
        } else if (value === undefined) {
          problems.push(at(`required: write ${what(fieldSchema, issue.expected)}`));
        } else {
          // A type mismatch never echoes a text value: it may be a secret pasted where a reference belongs.
          const got = typeof value === 'string' ? 'a text value' : received(value);
          problems.push(at(`${got} is not accepted here: write ${what(fieldSchema, issue.expected)}`));
        }
        continue;
      }
      case 'invalid_union': {
        const discriminator = (issue as { discriminator?: string }).discriminator;
        const options = (issue as { options?: readonly unknown[] }).options;
        if (discriminator !== undefined && options !== undefined) {
          const names = options.map(String);
          problems.push(
            at(value === undefined ? `required: write one of ${names.join(', ')}` : notOneOf(value, names)),
          );
        } else if (value === undefined) {
          problems.push(at(`required: write ${what(fieldSchema, undefined)}`));
        } else {
          const keys = knownKeys(fieldSchema);
          const written =
            value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value) : [];
          const typo = written.map((k) => (keys.includes(k) ? undefined : nearest(k, keys))).find((k) => k);
          problems.push(
            at(
              descriptionOf(fieldSchema) !== undefined
                ? `${received(value)} is not accepted here: write ${descriptionOf(fieldSchema)}`
                : keys.length > 0
                  ? `write exactly one of ${keys.join(', ')}${typo === undefined ? '' : ` (did you mean "${typo}"?)`}`
                  : `${received(value)} is not accepted here`,
            ),
          );
        }
        continue;
      }
      case 'invalid_value': {
        const values = issue.values.map(String);
        problems.push(
          at(value === undefined ? `required: write one of ${values.join(', ')}` : notOneOf(value, values)),
        );
        continue;
      }
      case 'too_small':
      case 'too_big':
        problems.push(at((isValidatorWording(issue) ? boundText(issue) : undefined) ?? issue.message));
        continue;
      case 'invalid_format':
        problems.push(
          at(
            issue.format === 'url' && isValidatorWording(issue)
              ? 'is not a URL: write the scheme and host, e.g. https://service.example.com'
              : issue.message,
          ),
        );
        continue;
      default:
        problems.push(at(issue.message));
    }
  }
  return problems;
}
