export { loadConfig, defaultConfig, FLAG_ALIASES, type LoadConfigOptions } from './load-config.ts';
export { checkBindSafety, isLoopbackHost } from './bind-safety.ts';
export { CONFIG_LEAVES, CONFIG_SCHEMA, DEFAULT_CONFIG_PATH, SCHEMA_PATH, describeAllowed, longEnvName, type ConfigLeaf } from './config-schema.ts';
export {
  LOG_LEVELS,
  QUANT_MODES,
  type HearthConfig,
  type LogLevel,
  type QuantMode,
  type ServerConfig,
  type ModelSection,
  type ClusterSection,
  type TlsConfig,
  type WorkerSection,
  type LimitsConfig,
  type LoggingConfig,
  type MetricsConfig,
} from './types.ts';
