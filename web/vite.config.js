import { defineConfig } from 'vite'

// The built app is served by coscribe at /; `npm run dev` proxies the API and sockets to a
// coscribe on 127.0.0.1:8000 (override with COSCRIBE_URL).
const target = process.env.COSCRIBE_URL || 'http://127.0.0.1:8000'

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    sourcemap: false,
    rolldownOptions: {
      output: {
        // The first load is the page shell (src/main.js and what it imports statically); the
        // editor and the Markdown preview come as separate chunks when a note opens, the
        // libraries they use split by family so that each stays small and cached on its own.
        codeSplitting: {
          includeDependenciesRecursively: false,
          groups: [
            { name: 'yjs', priority: 1, test: /node_modules[\\/](yjs|y-websocket|y-protocols|y-indexeddb|y-codemirror\.next|lib0)[\\/]/ },
            { name: 'codemirror-lang', priority: 3, test: /node_modules[\\/](@codemirror[\\/]lang-|@lezer[\\/](markdown|html|css|javascript))/ },
            { name: 'codemirror', priority: 2, test: /node_modules[\\/](@codemirror|codemirror|@lezer|style-mod|w3c-keyname|crelt|@marijn)[\\/]/ },
          ],
        },
      },
    },
  },
  server: {
    proxy: {
      '/api': target,
      '/ws': { target, ws: true },
    },
  },
})
