import { readFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';

// openapi/openapi.yaml is the one source of the API's request/response schemas. This module loads it
// once, hands its component schemas to ajv (request validation in fastify, response checks in
// tests), and lists its routes so a test can compare them with what the app registers.

const DOC_URL = new URL('../../openapi/openapi.yaml', import.meta.url);
const REF_PREFIX = '#/components/schemas/';

export interface OpenApiDocument {
  readonly openapi: string;
  readonly paths: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly components: { readonly schemas: Readonly<Record<string, unknown>> };
  readonly [k: string]: unknown;
}

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

let cached: OpenApiDocument | undefined;

/** The parsed document (deep-frozen; parsed once per process). */
export function loadOpenApiDocument(): OpenApiDocument {
  cached ??= deepFreeze(parseYaml(readFileSync(DOC_URL, 'utf8')) as OpenApiDocument);
  return cached;
}

export interface DocumentRoute {
  readonly method: string;
  readonly url: string;
  /** Marked `x-hearth-extra-route`: registered by the gateway through createApp's extraRoutes. */
  readonly extra: boolean;
}

/** Every operation, with OpenAPI's `{param}` rewritten to fastify's `:param`. */
export function documentRoutes(doc: OpenApiDocument = loadOpenApiDocument()): DocumentRoute[] {
  const out: DocumentRoute[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of HTTP_METHODS) {
      const op = item[m] as Record<string, unknown> | undefined;
      if (op !== undefined) out.push({ method: m.toUpperCase(), url: toFastifyPath(path), extra: op['x-hearth-extra-route'] === true });
    }
  }
  return out;
}

export function toFastifyPath(openapiPath: string): string {
  return openapiPath.replace(/\{([^}]+)\}/g, ':$1');
}

/** The $ref a route uses for a component schema; resolved by the ajv from createSchemaAjv(). */
export function schemaRef(name: string): { $ref: string } {
  const doc = loadOpenApiDocument();
  if (doc.components.schemas[name] === undefined) throw new Error(`openapi.yaml has no components.schemas.${name}`);
  return { $ref: name };
}

/**
 * An ajv (JSON Schema 2020-12, OpenAPI 3.1's dialect) holding every component schema under its own
 * name, with `#/components/schemas/X` refs rewritten to `X`. Options follow OpenAI's behaviour, not
 * fastify's defaults: no type coercion ("1" is not a number), no defaults injected, unknown fields
 * kept (and ignored by the handlers), first error only (cheap on hostile bodies).
 */
export function createSchemaAjv(doc: OpenApiDocument = loadOpenApiDocument()): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, validateFormats: true });
  (addFormatsModule as unknown as (a: Ajv2020) => void)(ajv);
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    ajv.addSchema(rewriteRefs(schema) as object, name);
  }
  return ajv;
}

let sharedAjv: Ajv2020 | undefined;
const validators = new Map<string, ValidateFunction>();

/** A compiled validator for a component schema (compiled once per process). */
export function validatorFor(name: string): ValidateFunction {
  let v = validators.get(name);
  if (v === undefined) {
    sharedAjv ??= createSchemaAjv();
    v = sharedAjv.compile(schemaRef(name));
    validators.set(name, v);
  }
  return v;
}

/** The placeholder request examples name the model with (openapi.yaml's `examples`). */
export const EXAMPLE_MODEL = 'your-model-id';

/**
 * The document as this gateway serves it: openapi.yaml with its request examples naming the model
 * served, so Swagger UI's "Try it out" sends them as they are.
 */
export function servedDocument(modelId: string, doc: OpenApiDocument = loadOpenApiDocument()): OpenApiDocument {
  const fill = (n: unknown, inExample: boolean): unknown => {
    if (Array.isArray(n)) return n.map((x) => fill(x, inExample));
    if (n === null || typeof n !== 'object') return n;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(n)) out[k] = inExample && k === 'model' && v === EXAMPLE_MODEL ? modelId : fill(v, inExample || k === 'examples' || k === 'example');
    return out;
  };
  return fill(doc, false) as OpenApiDocument;
}

/** The document as served at /openapi.json (a plain JSON copy). */
export function openApiJson(modelId?: string): string {
  return JSON.stringify(modelId === undefined ? loadOpenApiDocument() : servedDocument(modelId));
}

function rewriteRefs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith(REF_PREFIX) ? v.slice(REF_PREFIX.length) : rewriteRefs(v);
  }
  return out;
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
