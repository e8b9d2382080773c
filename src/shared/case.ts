/**
 * The one camelCase ↔ snake_case converter: llmkit's options are camelCase, the Python jobs' configs and
 * results snake_case (jobs.ts). Top-level keys only: nested values (data files, exact-match samples) are
 * the worker's own shapes and pass through as they are. The types follow the keys, so a converted object
 * is checked against the job's schema type like one written by hand.
 */

type SnakeKey<S extends string> = S extends `${infer Head}${infer Tail}` ? `${Head extends Lowercase<Head> ? Head : `_${Lowercase<Head>}`}${SnakeKey<Tail>}` : S;
type CamelKey<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelKey<Tail>>}` : S;

export type SnakeKeys<T> = { [K in keyof T as K extends string ? SnakeKey<K> : K]: T[K] };
export type CamelKeys<T> = { [K in keyof T as K extends string ? CamelKey<K> : K]: T[K] };

export const snakeKey = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
export const camelKey = (key: string): string => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

export function toSnakeCase<T extends object>(o: T): SnakeKeys<T> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [snakeKey(k), v])) as SnakeKeys<T>;
}

export function toCamelCase<T extends object>(o: T): CamelKeys<T> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [camelKey(k), v])) as CamelKeys<T>;
}
