/** INFO: Redis-style sections, so that clients and tools that read INFO are satisfied. */
import { readFileSync } from 'node:fs';
import { arch, release, type as osType } from 'node:os';
import { databaseCount, namespaceOfDb, redisVersion } from './databases.js';
import type { Client as Connection } from './context.js';

/** The version in ragkv's package.json, found by walking up from this file. */
export const ragkvVersion: string = (() => {
  let dir = new URL('.', import.meta.url);
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ragkv' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json at this level: keep walking up
    }
    dir = new URL('..', dir);
  }
  return 'unknown';
})();

const defaultSections = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cluster', 'keyspace'];

/** The INFO text for the requested sections (none, `default`, `all` or `everything`: all). */
export function infoText(c: Connection, requested: string[]): string {
  let wanted = requested.length === 0 ? defaultSections : requested;
  if (wanted.some((s) => s === 'all' || s === 'everything' || s === 'default')) wanted = defaultSections;
  const parts: string[] = [];
  for (const section of defaultSections) {
    if (!wanted.includes(section)) continue;
    const lines = sectionLines(c, section);
    parts.push(`# ${section[0]!.toUpperCase()}${section.slice(1)}\r\n${lines.join('\r\n')}${lines.length ? '\r\n' : ''}`);
  }
  return parts.join('\r\n');
}

/**
 * `lines` (`name:value`) with the extra fields: an extra with a built-in's name replaces that
 * line's value in place, so each field appears once whoever supplies it.
 */
function withExtraFields(lines: string[], extra: Record<string, string | number>): string[] {
  const fields = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  for (const [k, v] of Object.entries(extra)) fields.set(k, String(v).replace(/[\r\n]+/g, ' '));
  return [...fields].map(([k, v]) => `${k}:${v}`);
}

function sectionLines(c: Connection, section: string): string[] {
  const s = c.server;
  switch (section) {
    case 'server': {
      const uptimeS = Math.floor((Date.now() - s.startedMs) / 1000);
      const lines = [
        `redis_version:${redisVersion}`,
        `ragkv_version:${ragkvVersion}`,
        `redis_mode:${s.topology ? 'cluster' : 'standalone'}`,
        `os:${osType()} ${release()} ${arch()}`,
        `arch_bits:${process.arch.endsWith('64') ? 64 : 32}`,
        `process_id:${process.pid}`,
        `tcp_port:${s.port}`,
        `uptime_in_seconds:${uptimeS}`,
        `uptime_in_days:${Math.floor(uptimeS / 86400)}`,
      ];
      return withExtraFields(lines, s.info?.() ?? {});
    }
    case 'clients':
      return [`connected_clients:${s.clients.size}`, `maxclients:${s.limits.connectionsMax}`, 'blocked_clients:0'];
    case 'memory': {
      const m = process.memoryUsage();
      return [`used_memory:${m.heapUsed}`, `used_memory_rss:${m.rss}`, 'maxmemory:0'];
    }
    case 'persistence':
      return ['loading:0'];
    case 'stats':
      return [
        `total_connections_received:${s.stats.connectionsReceived}`,
        `total_commands_processed:${s.stats.commandsProcessed}`,
        `rejected_connections:${s.stats.connectionsRejected}`,
      ];
    case 'replication':
      return ['role:master', 'connected_slaves:0'];
    case 'cluster':
      return [`cluster_enabled:${s.topology ? 1 : 0}`];
    case 'keyspace': {
      const lines: string[] = [];
      for (let db = 0; db < databaseCount; db++) {
        const keys = c.kv.dbsize(namespaceOfDb(db));
        if (keys > 0) lines.push(`db${db}:keys=${keys},expires=0,avg_ttl=0`);
      }
      return lines;
    }
    default:
      return [];
  }
}
