/**
 * Compiles a path glob to an anchored regular expression. `*` matches within one path
 * segment, `**` matches any number of whole segments (including none), and every other
 * character is literal, so `/fhir/Patient/*\/$everything` matches
 * `/fhir/Patient/123/$everything` and nothing below it.
 */
export function compilePathGlob(glob: string): RegExp {
  let pattern = '^';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '*' && glob[i + 1] === '*') {
      const wholeSegment = glob[i - 1] === '/' && (glob[i + 2] === '/' || i + 2 === glob.length);
      if (wholeSegment && glob[i + 2] === '/') {
        pattern += '(?:[^/]*/)*';
        i += 2;
      } else {
        pattern += '.*';
        i += 1;
      }
    } else if (char === '*') {
      pattern += '[^/]*';
    } else {
      pattern += char.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }

  return new RegExp(`${pattern}$`, 'u');
}
