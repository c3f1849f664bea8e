// The Markdown preview: markdown-it renders (raw HTML off), DOMPurify sanitizes what it made.
// Loaded on demand.
import MarkdownIt from 'markdown-it'
import DOMPurify from 'dompurify'

const md = new MarkdownIt({ html: false, linkify: true, breaks: false })

export function renderMarkdown (text) {
  return DOMPurify.sanitize(md.render(text), { USE_PROFILES: { html: true } })
}
