/**
 * Structured JSON logs (pino), one object per line on stdout, so `ragkv start | jq` and log
 * shippers work unchanged. The human banner of `ragkv start` goes to stderr instead.
 */
import { pino } from 'pino';
import { logLevels } from './config.js';

export type Logger = pino.Logger;

/**
 * Creates the process logger at `level` (fatal, error, warn, info, debug, trace, silent).
 * Writes synchronously: the server logs per event, not per request, and a line must not
 * be lost when the process exits right after it (startup failure, second signal).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  if (!logLevels.includes(level)) {
    throw new RangeError(`log level must be one of ${logLevels.join(', ')}, got '${level}'`);
  }
  return pino(
    {
      name: 'ragkv',
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
