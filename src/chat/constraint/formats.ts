// JSON Schema `format`s hearth enforces while decoding, each as a pattern for the automaton
// (regex-dfa.ts). Each pattern spells a subset of what ajv-formats' "full" mode accepts (lower-case
// hex and scheme letters, an upper-case T and Z, no leap seconds), so every string decoded under
// it validates; test/chat-constraint-keywords.test.ts checks 50 samples of each with ajv.

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `(${OCTET}\\.){3}${OCTET}`;
// RFC 3339 full-date with days per month; Feb 29 only in leap years (divisible by 4, centuries by 400).
const YEAR = '[0-9]{4}';
const LEAP = '([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)';
const DATE = `(${YEAR}-(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|${YEAR}-(0[469]|11)-(0[1-9]|[12][0-9]|30)|${YEAR}-02-(0[1-9]|1[0-9]|2[0-8])|${LEAP}-02-29)`;
const TIME = '([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])';
// ISO 8601 durations as ajv-formats reads them (P, then dates and/or T times, or weeks).
const DUR_DATE = '([0-9]+Y([0-9]+M)?([0-9]+D)?|[0-9]+M([0-9]+D)?|[0-9]+D)';
const DUR_TIME = 'T([0-9]+H([0-9]+M)?([0-9]+S)?|[0-9]+M([0-9]+S)?|[0-9]+S)';
// Labels of at most 32 characters (DNS allows 63): a smaller automaton, and still every name a
// model has reason to write.
const LABEL = '[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?';
const H16 = '[0-9a-f]{1,4}';
// RFC 4291 text forms (full, compressed with ::, and with a trailing IPv4), as in ajv-formats.
const LS32 = `(${H16}:${H16}|${IPV4})`;
const IPV6 = [
  `(${H16}:){6}${LS32}`,
  `::(${H16}:){5}${LS32}`,
  `(${H16})?::(${H16}:){4}${LS32}`,
  `((${H16}:){0,1}${H16})?::(${H16}:){3}${LS32}`,
  `((${H16}:){0,2}${H16})?::(${H16}:){2}${LS32}`,
  `((${H16}:){0,3}${H16})?::${H16}:${LS32}`,
  `((${H16}:){0,4}${H16})?::${LS32}`,
  `((${H16}:){0,5}${H16})?::${H16}`,
  `((${H16}:){0,6}${H16})?::`,
].join('|');
const PCT = '%[0-9a-f]{2}';
const PCHAR = `([a-z0-9._~!$&'()*+,;=:@-]|${PCT})`;
const QCHAR = `([a-z0-9._~!$&'()*+,;=:@/?-]|${PCT})`;
const URI = `[a-z][a-z0-9+.-]*://([a-z0-9._~-]|${PCT})+(:[0-9]{1,5})?(/${PCHAR}*)*(\\?${QCHAR}*)?(#${QCHAR}*)?`;

export interface FormatSpec {
  readonly pattern: string;
  /** A length bound the format implies (hostname: 253), else Infinity. */
  readonly maxLength: number;
}

export const FORMATS: Readonly<Record<string, FormatSpec>> = {
  'date-time': { pattern: `^${DATE}T${TIME}$`, maxLength: Infinity },
  date: { pattern: `^${DATE}$`, maxLength: Infinity },
  time: { pattern: `^${TIME}$`, maxLength: Infinity },
  duration: { pattern: `^P(${DUR_DATE}(${DUR_TIME})?|${DUR_TIME}|[0-9]+W)$`, maxLength: Infinity },
  email: { pattern: `^[a-z0-9_+-]+(\\.[a-z0-9_+-]+)*@(${LABEL}\\.)+[a-z]{2,63}$`, maxLength: Infinity },
  hostname: { pattern: `^${LABEL}(\\.${LABEL})*$`, maxLength: 253 },
  ipv4: { pattern: `^${IPV4}$`, maxLength: Infinity },
  ipv6: { pattern: `^(${IPV6})$`, maxLength: Infinity },
  uuid: { pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', maxLength: Infinity },
  uri: { pattern: `^${URI}$`, maxLength: Infinity },
};
