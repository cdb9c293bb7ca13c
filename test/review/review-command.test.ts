import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import t from 'tap';
import { runCli } from '../../proxy/cli/commands.ts';
import type { AuditEntry } from '../../proxy/ports.ts';
import { patternOf } from '../../proxy/review/entry.ts';
import { BenignPatterns, ReviewQueue } from '../../proxy/review/queue.ts';
import { runReviewCommand, type ReviewCommandDependencies } from '../../proxy/review/cli.ts';
import { deletePrefix, REDIS_URL, sampleEntry, testPrefix } from './helpers.ts';

const redis = new Redis(REDIS_URL);
const prefix = testPrefix();
const queue = new ReviewQueue(redis, { prefix, maxLength: 1000 });
t.teardown(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

async function review(argv: string[], deps: ReviewCommandDependencies = {}): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (chunk: Buffer) => (chunks.out += chunk.toString()));
  err.on('data', (chunk: Buffer) => (chunks.err += chunk.toString()));
  const code = await runReviewCommand(argv, out, err, deps);
  return { code, ...chunks };
}

const target = ['--redis', REDIS_URL, '--prefix', prefix];

t.test('list shows pending entries', async (t) => {
  const id = await queue.add(sampleEntry({ user: 'demo-list', rule: 'step-up-unusual', risk: 0.8125 }));
  const result = await review(['list', ...target]);

  t.equal(result.code, 0);
  t.match(result.out, /^ID\s+TIME\s+USER\s+ROUTE\s+ACTION\s+RISK\s+RULE\n/);
  t.match(result.out, new RegExp(`${id}\\s+2026-12-04T21:00:00.000Z\\s+demo-list\\s+ehr\\s+step_up\\s+0.813\\s+step-up-unusual`));
});

t.test('list marks the hour limit', async (t) => {
  const id = await queue.add(sampleEntry({ user: 'demo-limited', action: 'block', user_hour_limit: 500 }));
  const result = await review(['list', ...target]);

  t.equal(result.code, 0);
  t.match(result.out, new RegExp(`${id}\\s+\\S+\\s+demo-limited\\s+ehr\\s+block \\(hour limit\\)\\s+0.820`));
});

t.test('show prints the explanation', async (t) => {
  const id = await queue.add(sampleEntry({ user: 'demo-show' }));
  const result = await review(['show', id, ...target]);

  t.equal(result.code, 0);
  const shown = JSON.parse(result.out) as { id: string; entry: { user: string; top_features: unknown[]; reasons: string[] } };
  t.equal(shown.id, id);
  t.equal(shown.entry.user, 'demo-show');
  t.equal(shown.entry.top_features.length, 2);
});

t.test('usage errors', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['purge', ...target], /^wardgate: unknown review subcommand "purge"; expected list, show or label\n$/],
    [['show', ...target], /^wardgate: missing entry id/],
    [['label', '1-0', 'fine', '--note', 'x', '--analyst', 'a', ...target], /^wardgate: invalid label "fine"; use benign or misuse\n$/],
    [['label', '1-0', 'benign', '--analyst', 'a', ...target], /^wardgate: missing --note TEXT/],
    [['label', '1-0', 'benign', '--note', 'x', ...target], /^wardgate: missing --analyst NAME/],
    [['label', '1-0', 'benign', '--note', 'x', '--analyst', 'a', '--revoke', ...target], /^wardgate: --revoke applies only to a misuse label/],
    [['list'], /^wardgate: missing --config FILE or --redis URL/],
    [['list', '--redis', 'http://x'], /^wardgate: --redis must be a redis:\/\/ or rediss:\/\/ URL, received a value with http:$/m],
    [['list', '--config', '/nonexistent.yaml'], /^wardgate: cannot read the configuration file \/nonexistent.yaml \(ENOENT\)/],
  ];
  for (const [argv, message] of cases) {
    const result = await review(argv);
    t.equal(result.code, 2, argv.join(' '));
    t.match(result.err, message);
  }
});

t.test('unknown id is a clear failure', async (t) => {
  const result = await review(['show', '1-0', ...target]);
  t.equal(result.code, 1);
  t.match(result.err, /^wardgate: Review entry "1-0" was not found in wgtest:review:\w+:review; it may have been trimmed\. Run "wardgate review list" for the pending ids\.\n$/);
});

t.test('benign label accepts the pattern', async (t) => {
  const entry = sampleEntry({ user: 'demo-benign' });
  const id = await queue.add(entry);
  const audit: AuditEntry[] = [];
  const result = await review(['label', id, 'benign', '--note', 'covering night shift', '--analyst', 'ana', ...target], { audit: { append: (item) => void audit.push(item) }, now: () => 5000 });

  t.equal(result.code, 0, result.err);
  t.match(result.out, new RegExp(`^Labelled ${id} benign \\(user demo-benign, route ehr\\)\\.`));
  t.equal(await new BenignPatterns(redis, prefix).isAccepted('demo-benign', patternOf('ehr', entry.top_features)), true);
  t.same(audit, [{ kind: 'review_label', trace_id: entry.trace_id, entry_id: id, label: 'benign', note: 'covering night shift', analyst: 'ana', user: 'demo-benign', route: 'ehr', time: 5000 }]);
  t.notMatch((await review(['list', ...target])).out, new RegExp(id), 'no longer pending');
});

t.test('misuse with --revoke ends sessions', async (t) => {
  const id = await queue.add(sampleEntry({ user: 'demo-snoop' }));
  const revoked: string[] = [];
  const audit: AuditEntry[] = [];
  const result = await review(['label', id, 'misuse', '--note', 'looked up a celebrity', '--analyst', 'ana', '--revoke', ...target], {
    revokeSessions: async (subject) => {
      revoked.push(subject);
      return 2;
    },
    audit: { append: (item) => void audit.push(item) },
  });

  t.equal(result.code, 0, result.err);
  t.same(revoked, ['demo-snoop']);
  t.match(result.out, /Revoked 2 session\(s\) of demo-snoop\./);
  t.match(audit[0], { kind: 'review_label', label: 'misuse', revoked_sessions: 2 });
  t.equal(await new BenignPatterns(redis, prefix).isAccepted('demo-snoop', patternOf('ehr', sampleEntry().top_features)), false, 'misuse accepts no pattern');
});

t.test('review is listed in the CLI', async (t) => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString()));
  t.equal(await runCli(['review', '--help'], out, new PassThrough()), 0);
  t.match(text, /^Usage: wardgate review list\|show\|label/);
});

t.test('--config reads Redis and benign_ttl', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wgtest-review-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'wardgate.yaml');
  writeFileSync(file, `redis: { url: "${REDIS_URL}", key_prefix: "${prefix}" }\nreview: { benign_ttl: 120 }\noidc: { client_secret_env: UNSET_IN_THIS_TEST }\n`);

  const id = await queue.add(sampleEntry({ user: 'demo-config' }));
  const listed = await review(['list', '--config', file]);
  t.equal(listed.code, 0, listed.err);
  t.match(listed.out, new RegExp(`${id}\\s.*demo-config`));

  const labelled = await review(['label', id, 'benign', '--note', 'on call', '--analyst', 'ana', '--config', file]);
  t.equal(labelled.code, 0, labelled.err);
  t.match(labelled.out, /is not flagged again for 2 minutes; its blocks and break-glass decisions are still queued\./);
  const digest = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 32);
  const ttl = await redis.ttl(`${prefix}review:benign:{${digest('demo-config')}}:${digest(patternOf('ehr', sampleEntry().top_features))}`);
  t.ok(ttl > 0 && ttl <= 120, `the pattern expires after benign_ttl (ttl ${ttl})`);

  // The label is in the audit trail next to the configuration, in a chain of its own that verifies.
  const auditDir = join(dir, '.wardgate/audit');
  const trail = readdirSync(auditDir).filter((name) => name.endsWith('.jsonl')).map((name) => readFileSync(join(auditDir, name), 'utf8')).join('');
  const labelRecord = trail.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>).find((record) => record.kind === 'review_label');
  t.match(labelRecord, { entry_id: id, label: 'benign', analyst: 'ana', note: 'on call', user: 'demo-config' });
  const out = new PassThrough();
  const err = new PassThrough();
  let verifyErr = '';
  err.on('data', (chunk: Buffer) => (verifyErr += chunk.toString()));
  t.equal(await runCli(['audit', 'verify', auditDir], out, err), 0, verifyErr);

  writeFileSync(file, 'redis: { url: memory }\n');
  const memory = await review(['list', '--config', file]);
  t.equal(memory.code, 2);
  t.match(memory.err, /redis\.url is "memory", and the in-process store has no review queue/);

  const both = await review(['list', '--config', file, '--redis', REDIS_URL]);
  t.equal(both.code, 2);
  t.match(both.err, /use either --config FILE or --redis URL --prefix P, not both/);
});
