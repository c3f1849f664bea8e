import { defineConfig } from 'vite'

// The built app is served by coscribe at /; `npm run dev` proxies the API and sockets to a
// coscribe on 127.0.0.1:8000 (override with COSCRIBE_URL).
const target = process.env.COSCRIBE_URL || 'http://127.0.0.1:8000'

export default defineConfig({
  base: '/',
  build: { outDir: 'dist', assetsDir: 'assets', sourcemap: false },
  server: {
    proxy: {
      '/api': target,
      '/ws': { target, ws: true },
    },
  },
})
