const names = users.map((u) => u.name);
console.log(names.join(<CURSOR>));
