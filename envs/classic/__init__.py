"""Classic-control tasks: Gymnasium's Pendulum-v1, CartPole-v1, Acrobot-v1 and the PILCO/PETS
continuous cart-pole swing-up (implemented here), each with batched torch reward, termination and
(where the math is simple) dynamics functions."""
