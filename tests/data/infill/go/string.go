package util

const usage = `usage: tool <CURSOR>`
