// A minimal XML element tree: what the parser builds and what stanzas are written from.
// Only ever serialised by `toXml`, which escapes every attribute and text node.

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
}

export type XmlNode = XmlElement | string;

export function el(name: string, attrs: Record<string, string | number | undefined> = {}, ...children: (XmlNode | undefined | false | XmlNode[])[]): XmlElement {
  const a: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = String(v);
  const kids: XmlNode[] = [];
  for (const c of children) {
    if (c === undefined || c === false) continue;
    if (Array.isArray(c)) kids.push(...c);
    else kids.push(c);
  }
  return { name, attrs: a, children: kids };
}

export function escapeText(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function escapeAttr(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

/** Serialises iteratively-safe trees (our own, or parsed ones, which are depth-limited). */
export function toXml(node: XmlNode): string {
  if (typeof node === "string") return escapeText(node);
  let out = `<${node.name}`;
  for (const [k, v] of Object.entries(node.attrs)) out += ` ${k}="${escapeAttr(v)}"`;
  if (node.children.length === 0) return out + "/>";
  out += ">";
  for (const c of node.children) out += toXml(c);
  return out + `</${node.name}>`;
}

export function isElement(n: XmlNode | undefined): n is XmlElement {
  return typeof n === "object" && n !== null;
}

/** The local part of a (possibly prefixed) name. */
export function localName(name: string): string {
  const i = name.indexOf(":");
  return i < 0 ? name : name.slice(i + 1);
}

export function children(e: XmlElement, name?: string, xmlns?: string): XmlElement[] {
  return e.children.filter(
    (c): c is XmlElement => isElement(c) && (name === undefined || localName(c.name) === name) && (xmlns === undefined || c.attrs.xmlns === xmlns),
  );
}

export function child(e: XmlElement, name?: string, xmlns?: string): XmlElement | undefined {
  return children(e, name, xmlns)[0];
}

export function text(e: XmlElement | undefined): string {
  if (!e) return "";
  let s = "";
  for (const c of e.children) s += typeof c === "string" ? c : text(c);
  return s;
}

export function childText(e: XmlElement, name: string, xmlns?: string): string | undefined {
  const c = child(e, name, xmlns);
  return c ? text(c) : undefined;
}
