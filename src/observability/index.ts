export {
  createMetrics,
  type Metrics,
  type CreateMetricsOptions,
  type StreamTimer,
  type Labels,
  type CounterHandle,
  type LabeledCounterHandle,
  type GaugeHandle,
  type LabeledGaugeHandle,
  type HistogramHandle,
  type LabeledHistogramHandle,
} from './metrics.ts';
export { metricsRoute, instrumentRequests } from './metrics-route.ts';
export { createLogger, fastifyLogging, echoRequestId, genReqId, REDACT_PATHS, PRIVATE_FIELDS, type Logger, type CreateLoggerOptions } from './logger.ts';
export { TokenRate } from './token-rate.ts';
