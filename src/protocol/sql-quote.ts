// The only places the package writes text it did not choose into SQL. Both forms are read the
// same way whatever the session's standard_conforming_strings says: neither knows backslashes.

/** A "quoted identifier": an embedded double quote is doubled. NUL cannot be represented. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('\0', '').replaceAll('"', '""')}"`;
}

/**
 * A $tag$dollar-quoted$tag$ string literal whose tag does not occur in the text, so nothing in
 * the text can end it. NUL characters, which no SQL text can hold, are dropped.
 */
export function dollarQuote(text: string): string {
  const value = text.replaceAll('\0', '');
  let tag = '$q$';
  // The closing tag must be the first place the tag occurs, also across the text's end.
  for (let n = 1; `${value}${tag}`.indexOf(tag) !== value.length; n++) tag = `$q${n}$`;
  return `${tag}${value}${tag}`;
}
