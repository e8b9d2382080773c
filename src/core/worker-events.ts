/** What a running Python job reports (progress, metrics, logs), as commands see it through core. */
export type { ProgressEvent, WorkerEvent } from '../workers/protocol.js';
export { asMetric } from '../workers/jobs.js';
