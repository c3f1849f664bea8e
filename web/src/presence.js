// Who I am (name and colour, kept in localStorage, published as the awareness field `user`)
// and who is in the open note. Colours stay distinct: when someone else in the note shows my
// colour, the one of us with the higher client id shows another (colors.js).
import { distinctColor, randomColor } from './colors.js'
import { byId, el } from './dom.js'

const NAMES = ['Otter', 'Heron', 'Lynx', 'Marten', 'Ibis', 'Vole', 'Finch', 'Newt', 'Puffin', 'Hare', 'Wren', 'Stoat']

function loadUser () {
  let name = localStorage.getItem('coscribe.name')
  let color = localStorage.getItem('coscribe.color')
  if (!name) {
    name = `${NAMES[Math.floor(Math.random() * NAMES.length)]} ${Math.floor(Math.random() * 90 + 10)}`
    localStorage.setItem('coscribe.name', name)
  }
  if (!/^#[0-9a-f]{6}$/i.test(color || '')) {
    color = randomColor()
    localStorage.setItem('coscribe.color', color)
  }
  return { name, color }
}

export function createPresence (ctx) {
  const user = loadUser()
  let shown = user.color // the colour published: user.color unless someone here has it

  const awarenessUser = () => ({ name: user.name, color: shown, colorLight: shown + '33' })

  function publish () {
    ctx.editor()?.setUser(awarenessUser())
  }

  byId('user-name').value = user.name
  byId('user-color').value = user.color
  byId('user-name').addEventListener('input', (e) => {
    user.name = e.target.value.trim() || 'Anonymous'
    localStorage.setItem('coscribe.name', user.name)
    publish()
  })
  byId('user-color').addEventListener('input', (e) => {
    user.color = e.target.value
    shown = user.color
    localStorage.setItem('coscribe.color', user.color)
    publish()
  })

  /** Redraw the list of people in the note, and move off a colour someone else shows. */
  function render () {
    const editor = ctx.editor()
    const ul = byId('presence')
    ul.replaceChildren()
    if (!editor) return
    const me = editor.clientId
    const states = editor.states().filter(([, s]) => s.user)
    const others = states.filter(([id]) => id !== me).map(([id, s]) => [id, s.user.color])
    const wanted = distinctColor(me, user.color, others)
    if (wanted !== shown) {
      shown = wanted
      publish() // the awareness change renders again
      return
    }
    states.sort(([a], [b]) => (a === me ? -1 : b === me ? 1 : a - b))
    for (const [clientId, state] of states) {
      const li = document.createElement('li')
      li.dataset.clientId = String(clientId)
      const dot = el('span', 'dot')
      dot.style.background = state.user.color || '#888'
      li.append(dot, el('span', 'presence-name', state.user.name || 'Anonymous'))
      if (clientId === me) li.append(el('span', 'you', ' (you)'))
      ul.append(li)
    }
  }

  /** The names of the people in the note now (me first). */
  function names () {
    const editor = ctx.editor()
    if (!editor) return [user.name]
    const me = editor.clientId
    const others = editor.states().filter(([id, s]) => id !== me && s.user).map(([, s]) => s.user.name)
    return [user.name, ...others]
  }

  return { user, awarenessUser, render, names, shownColor: () => shown }
}
