/** Ending a connection from the server's side without letting the client keep it open. */
import type { Socket } from 'node:net';
import type { RespLogger } from './context.js';

/**
 * Ends `socket` (after `last`, when given) and destroys it `lingerMs` later if it has not
 * closed by then. Input is read and dropped meanwhile: a paused socket with unread input
 * never sees the client's end, so it would stay half-open; and a client that does not read
 * never lets `end()` finish. `client` names the connection in the log.
 */
export function endLingering(socket: Socket, lingerMs: number, logger: RespLogger, client: number | null, last?: Buffer): void {
  if (socket.destroyed) return;
  if (last === undefined) socket.end();
  else socket.end(last);
  socket.resume();
  const timer = setTimeout(lingerExpired, lingerMs, socket, lingerMs, logger, client);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

function lingerExpired(socket: Socket, lingerMs: number, logger: RespLogger, client: number | null): void {
  logger.warn(
    { client, closeLingerMsMax: lingerMs, unsentBytes: socket.writableLength },
    "RESP client not closed within limit 'closeLingerMsMax'; destroying it",
  );
  socket.destroy();
}
