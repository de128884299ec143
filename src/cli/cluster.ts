/**
 * `ragkv cluster status|leave|remove <id>`: operations on a running cluster, through a
 * member's admin port (HTTP). leave and remove wait until the change is done (streams
 * included) and print its progress from /cluster meanwhile.
 */
import http from 'node:http';

export const clusterHelp = `Usage:
  ragkv cluster status [--admin host:port]       members, slots, the change in flight, stream progress
  ragkv cluster leave [--admin host:port]        the member at --admin streams its slots out, then stops
  ragkv cluster remove <id> [--admin host:port]  re-replicate a dead member's slots from the survivors
--admin defaults to 127.0.0.1:9180 (also RAGKV_ADMIN). Joining needs no command: a member started
with --seeds joins and streams its slots; a member back on an empty disk restores itself.
`;

/** One HTTP request to an admin or control endpoint; no timeout (operations answer when done). */
export function httpRequest(host: string, port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function call(admin: string, method: 'GET' | 'POST', path: string): Promise<{ status: number; body: string }> {
  const [host, port] = splitHostPort(admin);
  return httpRequest(host, port, method, path);
}

export function splitHostPort(a: string): [string, number] {
  const i = a.lastIndexOf(':');
  if (i <= 0) throw new Error(`--admin must be host:port, got '${a}'`);
  return [a.slice(0, i).replace(/^\[|\]$/g, ''), Number(a.slice(i + 1))];
}

interface Described {
  self: string;
  placement: { epoch: number; change: { kind: string; member: string; stage: string; moving: number } | null; stream: { keys: number; bytes: number; sourcesDone: number; sources: number; done: boolean } } | null;
  members: { id: string; status: string; inTable: boolean; slots: number; primarySlots: number; client: string }[];
}

function statusText(d: Described): string {
  const p = d.placement;
  const lines = [`member ${d.self}; placement epoch ${p?.epoch ?? 0}${p ? '' : ' (no table: the cluster has not formed)'}`];
  if (p?.change) lines.push(`change in flight: ${p.change.kind} of ${p.change.member}, stage ${p.change.stage}, ${p.change.moving} slot replicas moving`);
  if (p?.stream && (p.stream.sources > 0 || p.stream.keys > 0)) {
    lines.push(`this member's stream: ${p.stream.keys} keys, ${p.stream.bytes} bytes, ${p.stream.sourcesDone}/${p.stream.sources} sources done${p.stream.done ? ' (done)' : ''}`);
  }
  lines.push('id        status    in table  slots  primaries  client');
  for (const m of d.members) lines.push(`${m.id.padEnd(10)}${m.status.padEnd(10)}${(m.inTable ? 'yes' : 'no').padEnd(10)}${String(m.slots).padEnd(7)}${String(m.primarySlots).padEnd(11)}${m.client}`);
  return lines.join('\n') + '\n';
}

export async function clusterMain(args: string[]): Promise<number> {
  let admin = process.env.RAGKV_ADMIN || '127.0.0.1:9180';
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--admin') admin = args[++i] ?? '';
    else if (a.startsWith('--admin=')) admin = a.slice('--admin='.length);
    else if (a === '--help' || a === '-h') {
      process.stdout.write(clusterHelp);
      return 0;
    } else rest.push(a);
  }
  const [sub, id] = rest;
  try {
    if (sub === 'status') {
      const r = await call(admin, 'GET', '/cluster');
      if (r.status !== 200) throw new Error(`${admin} answered ${r.status}: ${r.body.trim()}`);
      process.stdout.write(statusText(JSON.parse(r.body) as Described));
      return 0;
    }
    if (sub === 'leave' || sub === 'remove') {
      if (sub === 'remove' && !id) {
        process.stderr.write(`ragkv cluster remove: give the member id to remove\n\n${clusterHelp}`);
        return 2;
      }
      const path = sub === 'leave' ? '/cluster/leave' : `/cluster/remove?id=${encodeURIComponent(id!)}`;
      const progress = setInterval(() => {
        call(admin, 'GET', '/cluster')
          .then((r) => {
            const d = JSON.parse(r.body) as Described;
            const c = d.placement?.change;
            if (c) process.stderr.write(`  ${c.kind} of ${c.member}: ${c.stage}, ${c.moving} slot replicas moving (epoch ${d.placement!.epoch})\n`);
          })
          .catch(() => {});
      }, 2000);
      progress.unref();
      const r = await call(admin, 'POST', path).finally(() => clearInterval(progress));
      if (r.status !== 200) throw new Error(`${admin} answered ${r.status}: ${r.body.trim()}`);
      process.stdout.write(r.body);
      return 0;
    }
  } catch (err) {
    process.stderr.write(`ragkv cluster ${sub}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  process.stderr.write(`ragkv cluster: unknown or missing subcommand '${sub ?? ''}'\n\n${clusterHelp}`);
  return 2;
}
