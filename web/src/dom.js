// Small DOM helpers shared by the page's modules (no state).
export const byId = (id) => document.getElementById(id)

export function button (label, onClick, className = '') {
  const b = document.createElement('button')
  b.textContent = label
  if (className) b.className = className
  b.addEventListener('click', onClick)
  return b
}

export function el (tag, className = '', text = '') {
  const e = document.createElement(tag)
  if (className) e.className = className
  if (text) e.textContent = text
  return e
}
