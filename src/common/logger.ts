/**
 * The structured logger every layer writes to: pino's interface, so that layers below the
 * composition root (which creates it, see node/logger.ts) depend on no module above them.
 */
import type { Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;
