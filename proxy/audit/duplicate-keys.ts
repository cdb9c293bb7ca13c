/**
 * Returns the path of the first object key that occurs twice in the same object of a JSON
 * text, such as `action` or `principal.subject`, or null when every key is unique. Keys
 * compare after unescaping, so `"\u0061ction"` duplicates `"action"`. JSON.parse keeps the
 * last of two equal keys while other parsers keep the first, so a record with a duplicate
 * key can read differently from the content its hash covers. `text` must be valid JSON.
 */
export function findDuplicateKey(text: string): string | null {
  const frames: Array<{ keys: Set<string> | null; expectKey: boolean; key: string }> = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '"') {
      const end = stringEnd(text, i);
      const frame = frames[frames.length - 1];
      if (frame?.keys && frame.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (frame.keys.has(key)) return [...frames.slice(0, -1).map((open) => open.key).filter((name) => name !== ''), key].join('.');
        frame.keys.add(key);
        frame.key = key;
        frame.expectKey = false;
      }
      i = end;
    } else if (char === '{') {
      frames.push({ keys: new Set(), expectKey: true, key: '' });
    } else if (char === '[') {
      frames.push({ keys: null, expectKey: false, key: '' });
    } else if (char === '}' || char === ']') {
      frames.pop();
    } else if (char === ',') {
      const frame = frames[frames.length - 1];
      if (frame?.keys) frame.expectKey = true;
    }
  }
  return null;
}

/** Returns the index of the quote that closes the string starting at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return text.length - 1;
}
