/**
 * The load generator (`ragkv bench`): workloads, the driver, multi-process runs and reports.
 * Targets and peers live in ./targets and ./peers.
 */
export { Random } from '../../src/common/random.js';
export { LatestGenerator, ScrambledZipfianGenerator, UniformGenerator, ZipfianGenerator, type IntGenerator } from './distributions.js';
export { ValueFactory, verifyValue, type VerifyResult } from './values.js';
export { LatencyHistogram, mergeHistograms, type LatencySummary } from './histogram.js';
export {
  ALL_WORKLOAD_NAMES,
  createWorkload,
  type Operation,
  type OperationSource,
  type VerifyCounts,
  type Workload,
  type WorkloadParams,
} from './workloads.js';
export { Driver, errorKind, type DriverOptions, type DriverResult, type ScheduleStats } from './driver.js';
export { procCpuSeconds, runMultiProcess, type RunConfig, type RunMeasurement } from './multiproc.js';
export { ProgressLine, type ProgressUpdate } from './progress.js';
export { machineInfo, markdownReport, markdownTable, svgChart, writeReport, type BenchReport, type MachineInfo } from './report.js';
export type { RecordFields, Target, TargetFactory } from './target.js';
