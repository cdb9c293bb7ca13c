import { timingSafeEqual } from 'node:crypto';

import { generateTotpSecret } from './totp.ts';

/** Authentication context class after a password only. */
export const ACR_PASSWORD = 'urn:wardgate:acr:pwd';
/** Authentication context class after a password and a TOTP code. */
export const ACR_MFA = 'urn:wardgate:acr:mfa';

/** A demo account. Passwords are fixed demo strings, printed at start; the TOTP secret is new each start. */
export interface DemoAccount {
  readonly subject: string;
  readonly username: string;
  readonly password: string;
  readonly name: string;
  readonly email: string;
  readonly groups: readonly string[];
  /** Base32 TOTP secret. */
  readonly totp_secret: string;
}

/** Creates the three demo accounts with fresh TOTP secrets. */
export function createDemoAccounts(): readonly DemoAccount[] {
  return Object.freeze([
    account('physician', 'Dr. Ada Physician', ['physicians', 'clinicians']),
    account('nurse', 'Nia Nurse', ['nurses', 'clinicians']),
    account('clerk', 'Rory Records', ['records']),
  ]);
}

/** Returns the account when the password matches; compares in constant time. */
export function checkPassword(accounts: readonly DemoAccount[], username: string, password: string): DemoAccount | undefined {
  const found = accounts.find((a) => a.username === username);
  const expected = Buffer.from(found?.password ?? 'no-such-account');
  const received = Buffer.from(password);
  const matches = expected.length === received.length && timingSafeEqual(expected, received);

  return found !== undefined && matches ? found : undefined;
}

function account(username: string, name: string, groups: string[]): DemoAccount {
  return Object.freeze({
    subject: `demo-${username}`,
    username,
    password: `demo-${username}`,
    name,
    email: `${username}@demo.wardgate.invalid`,
    groups: Object.freeze(groups),
    totp_secret: generateTotpSecret(),
  });
}
