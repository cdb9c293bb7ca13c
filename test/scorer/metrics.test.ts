import t from 'tap';
import { formatSummary, summarize, type LabelledDecision } from '../../scorer/evaluation/metrics.ts';

const DAY = 86_400_000;
const at = (day: number, minute: number) => Date.UTC(2026, 10, 2) + day * DAY + minute * 60_000;

t.test('summarize counts records, episodes and user-days as the replay line defines them', async (t) => {
  const decisions: LabelledDecision[] = [
    // alice: two benign days, one step-up on day 0
    { time: at(0, 1), user: 'alice', action: 'allow', label: 'benign' },
    { time: at(0, 2), user: 'alice', action: 'step_up', label: 'benign' },
    { time: at(1, 1), user: 'alice', action: 'notify', label: 'benign' },
    // bob: one benign day
    { time: at(0, 5), user: 'bob', action: 'allow', label: 'benign' },
    // episode e1 caught by its 5th record; e2 flagged only at its 6th record (missed)
    ...[1, 2, 3, 4, 5].map((m) => ({ time: at(0, 100 + m), user: 'mallory', action: m === 5 ? 'block' : 'allow', label: 'misuse', episode: 'e1' }) as const),
    ...[1, 2, 3, 4, 5, 6].map((m) => ({ time: at(0, 200 + m), user: 'eve', action: m === 6 ? 'step_up' : 'allow', label: 'misuse', episode: 'e2' }) as const),
    { time: at(0, 300), user: 'carol', action: 'allow' },
  ];
  const summary = summarize(decisions);
  t.equal(summary.records, 16);
  t.equal(summary.episodes, 2);
  t.equal(summary.episode_recall, 0.5);
  t.equal(summary.benign_flag_rate, 2 / 4, 'step_up and notify are both flagged');
  t.equal(summary.benign_stepups_per_100_user_days, 100 * 1 / 3, 'one interruption over three user-days; notify does not interrupt');
  t.equal(summary.precision, 2 / 4);
  t.equal(summary.recall, 2 / 11);
  t.equal(summary.accuracy, (2 + 2) / 15);
  t.match(formatSummary(summary), /^records=16 episodes=2 episode_recall=0\.5000 benign_flag_rate=0\.5000 benign_stepups_per_100_user_days=33\.333 precision=0\.5000 recall=0\.1818 f1=0\.2667 accuracy=0\.2667$/);
});

t.test('an episode counts as caught by its earliest records, whatever the input order', async (t) => {
  const late = { time: at(0, 10), user: 'eve', action: 'allow', label: 'misuse', episode: 'e' } as const;
  const records: LabelledDecision[] = [1, 2, 3, 4, 5].map((m) => ({ ...late, time: at(0, 10 + m) }));
  records.push({ ...late, time: at(0, 1), action: 'block' });
  t.equal(summarize(records.reverse()).episode_recall, 1);
});

t.test('an empty or unlabelled log gives zeros, not NaN', async (t) => {
  const summary = summarize([{ time: 0, user: 'a', action: 'allow' }]);
  t.same(Object.values(summary).filter((v) => Number.isNaN(v)), []);
  t.equal(summary.records, 1);
});

t.test('a step-up within the elevation of the previous one is the same interruption', async (t) => {
  const ttl = 15 * 60_000;
  const stepUp = (user: string, minute: number): LabelledDecision => ({ time: at(0, minute), user, action: 'step_up', label: 'benign', stepUpTtlMs: ttl });
  const decisions: LabelledDecision[] = [
    stepUp('alice', 60),
    // Within alice's 15 minutes of elevation: the live proxy would not ask again.
    stepUp('alice', 70),
    stepUp('alice', 74),
    // After the elevation ran out: a second interruption.
    stepUp('alice', 80),
    // Blocks always interrupt, elevated or not.
    { time: at(0, 81), user: 'alice', action: 'block', label: 'benign' },
    // Another user's elevation is their own.
    stepUp('bob', 70),
    // A step-up without a ttl elevates nothing.
    { time: at(0, 90), user: 'carol', action: 'step_up', label: 'benign' },
    { time: at(0, 91), user: 'carol', action: 'step_up', label: 'benign' },
  ];
  const summary = summarize([...decisions].reverse());

  t.equal(summary.benign_stepups_per_100_user_days, (100 * (3 + 1 + 2)) / 3, 'alice 3 (two step-ups and a block), bob 1, carol 2');
  t.equal(summary.benign_interrupted_records_per_100_user_days, (100 * 8) / 3, 'every interrupted record');
  t.equal(summary.benign_flag_rate, 1, 'flagging is per record, elevation or not');
});

t.test('summarize leaves out records with invalid times', async (t) => {
  const valid: LabelledDecision[] = [
    { time: at(0, 1), user: 'alice', action: 'allow', label: 'benign' },
    { time: at(0, 2), user: 'alice', action: 'step_up', label: 'benign' },
    ...[1, 2, 3, 4, 5, 6].map((m) => ({ time: at(0, 10 + m), user: 'eve', action: m === 1 ? 'block' : 'allow', label: 'misuse', episode: 'e' }) as const),
  ];
  const invalid: LabelledDecision[] = [
    ...[Number.NaN, Number.POSITIVE_INFINITY, 8.64e15 + 1, -9e15].map((time) => ({ time, user: 'eve', action: 'allow', label: 'misuse', episode: 'e' }) as const),
    // A benign record's time becomes a UTC day, which a NaN time cannot.
    { time: Number.NaN, user: 'alice', action: 'allow', label: 'benign' },
  ];
  // The invalid records go in between, where a NaN would break the sort order.
  const decisions = [...valid.slice(0, 4), ...invalid, ...valid.slice(4)].reverse();

  const summary = summarize(decisions);

  t.equal(summary.records, 13);
  t.equal(summary.invalid_time_records, 5);
  t.same({ ...summary, records: 8, invalid_time_records: 0 }, summarize(valid), 'every other count is that of the valid records alone');
  t.equal(summary.episode_recall, 1, 'the episode is caught by its first record');
  t.match(formatSummary(summary), /^records=13 invalid_time_records=5 episodes=1 /);
  t.notMatch(formatSummary(summarize(valid)), /invalid_time_records/, 'the count is printed only when it is not 0');
});
